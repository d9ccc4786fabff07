import { describe, expect, it } from "@effect/vitest"
import { CliError } from "effect/cli"
import { describe as describeError } from "../../src/entry/OneLinePresenter.ts"

describe("OneLinePresenter", () => {
  it("an unknown flag is named, with effect/cli's suggestion", () => {
    expect(describeError(new CliError.UnrecognizedOption({ option: "--prot", command: ["effect-mqtt-broker"], suggestions: ["--port"] })))
      .toBe("unknown flag --prot (did you mean --port?)")
    expect(describeError(new CliError.UnrecognizedOption({ option: "--xyz", suggestions: [] }))).toBe("unknown flag --xyz")
  })

  it("any other parse error is its message on one line", () => {
    const line = describeError(new CliError.MissingOption({ option: "port" }))
    expect(line).not.toContain("\n")
    expect(line).toContain("port")
  })
})
