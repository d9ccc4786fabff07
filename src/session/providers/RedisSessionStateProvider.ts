/**
 * A `SessionStateProvider` on Redis, through Effect's `Redis` service (`effect/persistence/Redis`,
 * over node-redis with `@effect/platform-node`'s `NodeRedis`): several broker processes on one
 * Redis share their sessions (issue #15, "Scale out on Redis").
 *
 * Layout, under a configurable prefix (default `mqtt:`):
 * - `<prefix>session:<clientId>`: a hash with `state` (the session as `SessionCodec` text, versioned
 *   and Schema-described like the SQLite rows) and `version` (a number that changes at every write);
 * - `<prefix>sessions`: the set of client ids with a stored session (`clientIds` reads it: no KEYS);
 * - `<prefix>version`: the counter the versions are drawn from (INCR).
 *
 * Atomicity of `modify` across processes: optimistic compare-and-set by a Lua script, retried.
 * `modify` reads the hash (HMGET state, version), runs the update in this process, then a script
 * writes the new state only if `version` is still the one read, and updates the index set in the
 * same step (a Lua script runs alone on the server); if another writer got there first, the update
 * is run again on the new state (`SessionUpdate` is pure, as the service requires). Why a script
 * and not WATCH/MULTI/EXEC: WATCH belongs to a connection, so every `modify` in flight would need a
 * connection of its own (`Redis.reserve`, a pool of 10 by default), while the script runs over the
 * one shared, pipelined connection; and the script makes the session and the index set change
 * together. Versions come from one counter that never goes back, so a session removed and created
 * again between a read and a write never shows the version that was read (no ABA).
 * Within one process, updates of one client id are serialized first (a semaphore per client id
 * with an update in progress), so concurrent fibers do not race each other into retries; only
 * other processes cause retries, and updates of different clients run side by side.
 *
 * An update that returns the session it was given (or none for none) writes nothing: the read was
 * a consistent snapshot, so it is the point where that `modify` took effect.
 */
import { Data, Effect, Layer, Option, Semaphore } from "effect"
import * as Redis from "effect/persistence/Redis"
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import * as SessionCodec from "../SessionCodec.ts"
import type { SessionState } from "../SessionState.ts"
import { SessionStateProvider, SessionStoreError, type SessionUpdate } from "../SessionStateProvider.ts"

/** Where the provider keeps its keys. */
export interface Options {
  /** Prepended to every key; default `mqtt:`. Brokers sharing sessions use the same prefix. */
  readonly prefix?: string | undefined
}

/** How to reach Redis, and where to keep the keys. */
export interface LayerOptions extends Options {
  /** A node-redis URL, e.g. `redis://127.0.0.1:6379`. */
  readonly url: string
}

/** Another writer changed the session between the read and the write: run the update again. */
class Conflict extends Data.TaggedError("RedisSessionConflict") {}

/**
 * The compare-and-set: KEYS = session hash, index set, version counter; ARGV = the version read
 * ("" for no session), "1" to store or "0" to remove, the state text, the client id.
 * Returns 1 when written, 0 when the version changed since it was read.
 */
const compareAndSet = Redis.script(
  (session: string, index: string, counter: string, expected: string, write: boolean, state: string, clientId: string) => [
    session,
    index,
    counter,
    expected,
    write ? "1" : "0",
    state,
    clientId
  ],
  {
    numberOfKeys: 3,
    lua: `
local current = redis.call('HGET', KEYS[1], 'version')
if (current or '') ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'state', ARGV[3], 'version', redis.call('INCR', KEYS[3]))
  redis.call('SADD', KEYS[2], ARGV[4])
else
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[4])
end
return 1
`
  }
).withReturnType<number>()

/** Builds the provider over a `Redis` service. */
export const make = Effect.fnUntraced(function*(options: Options = {}) {
  const redis = yield* Redis.Redis
  const prefix = options.prefix ?? "mqtt:"
  const indexKey = `${prefix}sessions`
  const counterKey = `${prefix}version`
  const sessionKey = (clientId: string) => `${prefix}session:${clientId}`
  /** A semaphore per client id with an update running or waiting; removed when the last one ends. */
  const locks = new Map<string, { readonly semaphore: Semaphore.Semaphore; users: number }>()
  const serialized = <A, E>(clientId: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.suspend(() => {
      let entry = locks.get(clientId)
      if (entry === undefined) {
        entry = { semaphore: Semaphore.makeUnsafe(1), users: 0 }
        locks.set(clientId, entry)
      }
      entry.users++
      const held = entry
      return held.semaphore.withPermits(1)(effect).pipe(
        Effect.ensuring(Effect.sync(() => {
          if (--held.users === 0) locks.delete(clientId)
        }))
      )
    })

  const cas = redis.eval(compareAndSet)

  const storeError = (operation: string, clientId: string) => (cause: unknown) =>
    new SessionStoreError({ operation, clientId, cause })

  /** The stored session and its version ("" when there is none). */
  const read = (clientId: string) =>
    redis.send<[string | null, string | null]>("HMGET", sessionKey(clientId), "state", "version").pipe(
      Effect.flatMap(([text, version]) =>
        text === null || version === null
          ? Effect.succeed({ current: Option.none<SessionState>(), version: "" })
          : Effect.map(SessionCodec.decodeSession(text), (state) => ({ current: Option.some(state), version }))
      )
    )

  /** One optimistic attempt: fails with `Conflict` when another writer came first. */
  const attempt = <A>(clientId: string, update: SessionUpdate<A>) =>
    Effect.gen(function*() {
      const { current, version } = yield* read(clientId)
      const [result, next] = update(current)
      const unchanged = Option.isNone(next) ? Option.isNone(current) : Option.isSome(current) && current.value === next.value
      if (unchanged) return result
      const written = yield* cas(
        sessionKey(clientId),
        indexKey,
        counterKey,
        version,
        Option.isSome(next),
        Option.isSome(next) ? SessionCodec.encodeSession(next.value) : "",
        clientId
      )
      if (written !== 1) return yield* new Conflict()
      return result
    })

  const modify = <A>(clientId: string, update: SessionUpdate<A>): Effect.Effect<A, SessionStoreError> =>
    serialized(
      clientId,
      attempt(clientId, update).pipe(
        // at once, no backoff: a conflict means another writer's update went in, so every round
        // makes progress; and no sleep, which would also depend on the clock
        Effect.retry({ while: (error) => error._tag === "RedisSessionConflict" })
      )
    ).pipe(Effect.mapError(storeError("modify", clientId)))

  return SessionStateProvider.of({
    get: (clientId) => read(clientId).pipe(Effect.map(({ current }) => current), Effect.mapError(storeError("get", clientId))),
    store: (state) => modify(state.clientId, () => [undefined, Option.some(state)]),
    remove: (clientId) => modify(clientId, () => [undefined, Option.none()]),
    modify,
    clientIds: redis.send<ReadonlyArray<string>>("SMEMBERS", indexKey).pipe(Effect.mapError(storeError("clientIds", "")))
  })
})

/** The provider over a `Redis` service provided elsewhere (one client shared with other uses). */
export const layerRedis = (options: Options = {}): Layer.Layer<SessionStateProvider, never, Redis.Redis> =>
  Layer.effect(SessionStateProvider, make(options))

/** Redis could not be reached when the provider started; names the server (without its password). */
export class RedisConnectError extends Error {
  override readonly name = "RedisConnectError"
  /** The server's URL, any password replaced by `***`. */
  readonly url: string
  constructor(url: string, cause: unknown) {
    const shown = redact(url)
    const reason = describe(cause)
    super(`cannot reach Redis at ${shown}${reason === "" ? "" : `: ${reason}`}`)
    this.url = shown
  }
}

const redact = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//***@")
  }
}

/** The innermost message of an error chain (RedisError wraps node-redis' error in `cause`). */
const describe = (error: unknown): string => {
  let current: unknown = error
  for (let depth = 0; depth < 5; depth++) {
    const message = current instanceof Error ? current.message : ""
    const inner = typeof current === "object" && current !== null ? (current as { cause?: unknown }).cause : undefined
    if (message !== "" && (inner === undefined || inner === null)) return message.replace(/\s+/g, " ").trim()
    if (inner === undefined || inner === null) return message || String(current)
    current = inner
  }
  return String(current)
}

/**
 * The provider with its own node-redis client connected to `url`, closed with the Layer; a Redis
 * that cannot be reached fails the Layer with a `SessionStoreError` (operation `connect`) whose
 * cause is a `RedisConnectError` naming the server.
 */
export const layer = (options: LayerOptions): Layer.Layer<SessionStateProvider, SessionStoreError> =>
  layerRedis(options).pipe(
    Layer.provide(NodeRedis.layer({ url: options.url })),
    Layer.catchTag("RedisError", (cause) =>
      Layer.effect(SessionStateProvider, Effect.fail(new SessionStoreError({ operation: "connect", clientId: "", cause: new RedisConnectError(options.url, cause) }))
      ))
  )
