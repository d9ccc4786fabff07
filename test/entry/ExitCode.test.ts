import { describe, expect, it } from "@effect/vitest"
import { Cause, Exit } from "effect"
import { CliError } from "effect/cli"
import { ConfigError } from "../../src/config/ConfigError.ts"
import { ExitCode, outcome } from "../../src/entry/ExitCode.ts"
import { AddressInUse, ListenerError } from "../../src/transport/ListenerError.ts"

describe("ExitCode", () => {
  it("a clean run and a shutdown by signal (interruption) exit 0 silently", () => {
    expect(outcome(Exit.succeed(undefined))).toEqual({ code: ExitCode.ok, line: undefined })
    expect(outcome(Exit.failCause(Cause.interrupt(1)))).toEqual({ code: ExitCode.ok, line: undefined })
  })

  it("a bad configuration exits 2 with its one line", () => {
    expect(outcome(Exit.fail(new ConfigError({ keys: ["port"], message: "--port -1 is not a port (0-65535)" })))).toEqual({
      code: 2,
      line: "effect-mqtt-broker: --port -1 is not a port (0-65535)"
    })
  })

  it("a command line effect/cli cannot parse exits 2; its line was written by the presenter", () => {
    expect(outcome(Exit.fail(new CliError.ShowHelp({ commandPath: ["x"], errors: [] })))).toEqual({ code: 2, line: undefined })
  })

  it("a listener that cannot listen exits 1 with one line naming it", () => {
    const error = new ListenerError({ transport: "tcp", host: "0.0.0.0", port: 1883, reason: new AddressInUse({ cause: new Error("EADDRINUSE") }) })
    expect(outcome(Exit.fail(error))).toEqual({ code: 1, line: "effect-mqtt-broker: cannot listen on tcp://0.0.0.0:1883: address already in use" })
  })

  it("an unexpected defect exits 1 with one line, its stack left for --log-level debug", () => {
    const result = outcome(Exit.die(new TypeError("boom\n    at somewhere")))
    expect(result.code).toBe(1)
    expect(result.line).toBe("effect-mqtt-broker: unexpected failure: boom (--log-level debug shows where)")
  })
})
