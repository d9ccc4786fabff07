import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Logger } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as AclAuthorizer from "../../src/auth/AclAuthorizer.ts"
import { Authorizer } from "../../src/auth/Authorizer.ts"
import * as Load from "../../src/config/Load.ts"
import * as Settings from "../../src/config/Settings.ts"

const request = { username: undefined, clientId: "c1", action: "publish", topic: "a" } as const

describe("AclAuthorizer.layer", () => {
  it.effect("reloads the file on SIGHUP while it lives, keeps the rules on a bad file, and stops listening with its scope", () =>
    Effect.gen(function*() {
      const path = join(mkdtempSync(join(tmpdir(), "acl-")), "acl")
      writeFileSync(path, "topic read a\n")
      const lines: Array<string> = []
      const capture = Logger.make<unknown, void>(({ message }) => void lines.push(String(message)))
      const before = process.listenerCount("SIGHUP")
      yield* Effect.scoped(Effect.gen(function*() {
        const services = yield* Layer.build(AclAuthorizer.layer(path).pipe(Layer.provide(Logger.layer([capture]))))
        const authorizer = Context.get(services, Authorizer)
        expect(yield* authorizer.authorize(request)).toBe(false)
        expect(process.listenerCount("SIGHUP")).toBe(before + 1)

        // the listener is called as the signal would call it; the test process is not signalled
        writeFileSync(path, "topic write a\n")
        process.emit("SIGHUP", "SIGHUP")
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
        expect(yield* authorizer.authorize(request)).toBe(true)

        writeFileSync(path, "topic read a\nnonsense\n")
        process.emit("SIGHUP", "SIGHUP")
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
        expect(yield* authorizer.authorize(request)).toBe(true)
        expect(lines.some((line) => line.includes("line 2") && line.includes("keeping the rules in force"))).toBe(true)
      }))
      expect(process.listenerCount("SIGHUP")).toBe(before)
    }))
})

describe("Load.authorization (--acl-file)", () => {
  it.effect("none without --acl-file; a bad file is a ConfigError naming the flag and the line (exit 2)", () =>
    Effect.gen(function*() {
      expect(yield* Load.authorization([Settings.fromFlags({})])).toBeUndefined()
      const path = join(mkdtempSync(join(tmpdir(), "acl-")), "acl")
      writeFileSync(path, "topic read a\nuser\n")
      const layer = yield* Load.authorization([Settings.fromEnv({ MQTT_ACL_FILE: path })])
      const error = yield* Effect.flip(Effect.scoped(Layer.build(layer!)))
      expect(error).toMatchObject({ _tag: "ConfigError", keys: ["aclFile"] })
      expect(error.message).toBe(`MQTT_ACL_FILE=${path}: line 2: \`user\` needs a user name`)
    }))
})
