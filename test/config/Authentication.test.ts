import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Authenticator } from "../../src/auth/Authenticator.ts"
import * as Load from "../../src/config/Load.ts"
import * as Settings from "../../src/config/Settings.ts"

type FlagValues = Parameters<typeof Settings.fromFlags>[0]

const authentication = (flags: FlagValues, env: Record<string, string> = {}) =>
  Effect.runSync(Load.authentication([Settings.fromFlags(flags), Settings.fromEnv(env)]))

const usersFile = (): string => {
  const file = join(mkdtempSync(join(tmpdir(), "auth-config-")), "passwd")
  execFileSync("mosquitto_passwd", ["-b", "-c", file, "alice", "pw"], { stdio: "pipe" })
  return file
}

const request = (username: string | undefined, password?: string) => ({
  clientId: "c",
  username,
  password: password === undefined ? undefined : Buffer.from(password),
  remote: "test",
  protocolVersion: 4
})

/** The authenticator the layer builds, asked once: "ok" or the refusal's reason. */
const ask = (layer: Layer.Layer<Authenticator, unknown>, username: string | undefined, password?: string) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const authenticator = yield* Authenticator
      return yield* authenticator.authenticate(request(username, password))
    }).pipe(
      Effect.map(() => "ok"),
      Effect.catchTag("AuthenticationRefused", (refused) => Effect.succeed(refused.reason._tag)),
      Effect.provide(layer)
    )
  )

describe("Load.authentication: Mosquitto 2's defaults", () => {
  it("no password file: no authenticator, anonymous open", () => {
    expect(authentication({})).toEqual({ layer: undefined, anonymous: true })
  })

  it("a password file closes anonymous access unless --allow-anonymous", async () => {
    const file = usersFile()
    const closed = authentication({ passwordFile: file })
    expect(closed.anonymous).toBe(false)
    expect(await ask(closed.layer!, undefined)).toBe("NotAuthorized")
    expect(await ask(closed.layer!, "alice", "pw")).toBe("ok")
    expect(await ask(closed.layer!, "alice", "pw2")).toBe("BadCredentials")
    const open = authentication({ passwordFile: file, allowAnonymous: true })
    expect(open.anonymous).toBe(true)
    expect(await ask(open.layer!, undefined)).toBe("ok")
    expect(authentication({}, { MQTT_PASSWORD_FILE: file, MQTT_ALLOW_ANONYMOUS: "yes" }).anonymous).toBe(true)
  })

  it("an unusable password file is a ConfigError naming where it came from", async () => {
    const bad = join(mkdtempSync(join(tmpdir(), "auth-config-")), "passwd")
    writeFileSync(bad, "alice:secret\n")
    const { layer } = authentication({}, { MQTT_PASSWORD_FILE: bad })
    const exit = await Effect.runPromiseExit(Effect.provide(Effect.gen(function*() {
      return yield* Authenticator
    }), layer!))
    expect(Exit.isFailure(exit)).toBe(true)
    const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) as Error : undefined
    expect(error?.name).toBe("ConfigError")
    expect(error?.message).toMatch(new RegExp(`^MQTT_PASSWORD_FILE=${bad}: line 1: not a hashed password`))
  })

  it("isLoopback: only addresses of this machine's loopback", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) expect(Load.isLoopback(host)).toBe(true)
    for (const host of ["0.0.0.0", "::", "192.168.1.2", "example.com", "127.0.0.1.example.com"]) expect(Load.isLoopback(host)).toBe(false)
  })
})
