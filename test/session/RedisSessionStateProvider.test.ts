/**
 * What the conformance suite cannot see of the Redis provider: two providers with their own
 * clients (as two broker processes have) sharing sessions, the key layout, and its typed errors.
 * Against a real redis-server started for this file (`test/support/RedisServer.ts`).
 */
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import * as Redis from "effect/persistence/Redis"
import { randomUUID } from "node:crypto"
import * as RedisSessionStateProvider from "../../src/session/providers/RedisSessionStateProvider.ts"
import { make } from "../../src/session/SessionState.ts"
import { SessionStateProvider, SessionStoreError } from "../../src/session/SessionStateProvider.ts"
import * as RedisServer from "../support/RedisServer.ts"

const url = RedisServer.useRedisServer()

/** A provider with a client of its own, closed with the enclosing scope. */
const provider = (prefix: string) =>
  Effect.map(Layer.build(RedisSessionStateProvider.layer({ url: url(), prefix })), Context.get(SessionStateProvider))

/** A raw client for looking at the keys, closed with the enclosing scope. */
const raw = Effect.suspend(() => Effect.map(Layer.build(NodeRedis.layer({ url: url() })), Context.get(Redis.Redis)))

const session = (clientId: string) => make({ clientId, clean: false, expiryInterval: 3600, receiveMaximum: 10, will: undefined })

describe("RedisSessionStateProvider", () => {
  it.effect("two providers with their own clients doing 50 concurrent modifies each on one session lose no update (100 applied)", () =>
    Effect.scoped(Effect.gen(function*() {
      const prefix = `test:${randomUUID()}:`
      const a = yield* provider(prefix)
      const b = yield* provider(prefix)
      yield* a.store(session("shared"))
      const increment = (p: SessionStateProvider["Service"]) =>
        p.modify("shared", (current) => [undefined, Option.map(current, (s) => ({ ...s, dropped: s.dropped + 1 }))])
      yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b)),
        increment,
        { concurrency: "unbounded", discard: true }
      )
      expect(Option.getOrThrow(yield* a.get("shared")).dropped).toBe(100)
      expect(Option.getOrThrow(yield* b.get("shared")).dropped).toBe(100)
    })), 20_000)

  it.effect("a session stored by one provider is seen and removed by another on the same prefix, not on another prefix", () =>
    Effect.scoped(Effect.gen(function*() {
      const prefix = `test:${randomUUID()}:`
      const a = yield* provider(prefix)
      const b = yield* provider(prefix)
      const other = yield* provider(`test:${randomUUID()}:`)
      yield* a.store(session("c1"))
      expect(Option.getOrThrow(yield* b.get("c1")).clientId).toBe("c1")
      expect(yield* b.clientIds).toEqual(["c1"])
      expect(Option.isNone(yield* other.get("c1"))).toBe(true)
      expect(yield* other.clientIds).toEqual([])
      yield* b.remove("c1")
      expect(Option.isNone(yield* a.get("c1"))).toBe(true)
      expect(yield* a.clientIds).toEqual([])
    })))

  it.effect("keys live under the prefix: a hash per session and a set of client ids", () =>
    Effect.scoped(Effect.gen(function*() {
      const prefix = `test:${randomUUID()}:`
      const p = yield* provider(prefix)
      const redis = yield* raw
      yield* p.store(session("k/1"))
      expect(yield* redis.send("TYPE", `${prefix}session:k/1`)).toBe("hash")
      expect(yield* redis.send("SMEMBERS", `${prefix}sessions`)).toEqual(["k/1"])
      yield* p.remove("k/1")
      expect(yield* redis.send("EXISTS", `${prefix}session:k/1`)).toBe(0)
    })))

  it.effect("a stored session that does not decode fails get and modify with a SessionStoreError naming the client", () =>
    Effect.scoped(Effect.gen(function*() {
      const prefix = `test:${randomUUID()}:`
      const p = yield* provider(prefix)
      const redis = yield* raw
      yield* redis.send("HSET", `${prefix}session:bad`, "state", "{not a session", "version", "1")
      const got = yield* Effect.flip(p.get("bad"))
      expect(got).toBeInstanceOf(SessionStoreError)
      expect([got.operation, got.clientId]).toEqual(["get", "bad"])
      const modified = yield* Effect.flip(p.modify("bad", (current) => [undefined, current]))
      expect([modified.operation, modified.clientId]).toEqual(["modify", "bad"])
    })))

  it.effect("a Redis that cannot be reached fails the layer with a SessionStoreError (operation connect)", () =>
    Effect.scoped(Effect.gen(function*() {
      // the test server's port once it is stopped is known to be closed; a fresh server gives one
      const stopped = yield* Effect.promise(() => RedisServer.start())
      yield* Effect.promise(() => stopped.stop())
      const error = yield* Effect.flip(Layer.build(RedisSessionStateProvider.layer({ url: stopped.url })))
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.operation).toBe("connect")
      expect(error.cause).toBeInstanceOf(RedisSessionStateProvider.RedisConnectError)
      expect(String((error.cause as Error).message)).toMatch(new RegExp(`^cannot reach Redis at redis://127\\.0\\.0\\.1:${stopped.port}/?: \\S`))
      const secret = yield* Effect.flip(Layer.build(RedisSessionStateProvider.layer({ url: `redis://u:hunter2@127.0.0.1:${stopped.port}` })))
      expect(String((secret.cause as Error).message)).not.toContain("hunter2")
    })), 20_000)
})
