/**
 * A session plugin is a Layer that installs a `SessionStateProvider` and says who it is.
 * Providing the Layer is all the configuration there is: `SessionPlugin.layer` is the
 * in-memory default; `SessionPlugin.make` wraps any other provider Layer.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as MemorySessionStateProvider from "../session/MemorySessionStateProvider.ts"
import type { GroupCommit } from "../session/providers/GroupCommit.ts"
import type * as RedisSessionStateProvider from "../session/providers/RedisSessionStateProvider.ts"
import type { RetainedMessageStore } from "../session/providers/RetainedMessageStore.ts"
import type * as SqliteSessionStateProvider from "../session/providers/SqliteSessionStateProvider.ts"
import type { SessionStateProvider, SessionStoreError } from "../session/SessionStateProvider.ts"
import type { PluginDescriptor } from "./Plugin.ts"

/** The descriptor of the session plugin the broker runs with. */
export class SessionPlugin extends Context.Service<SessionPlugin, PluginDescriptor>()(
  "effect-mqtt-broker/plugin/SessionPlugin"
) {
  /** The default plugin: session state in memory (`MemorySessionStateProvider`). */
  static readonly memory: PluginDescriptor = { name: "memory-session", version: "0.1.0", vendor: "effect-mqtt-broker" }

  /** Wraps a provider Layer as a plugin carrying its descriptor. */
  static make<E, R>(
    descriptor: PluginDescriptor,
    provider: Layer.Layer<SessionStateProvider, E, R>
  ): Layer.Layer<SessionPlugin | SessionStateProvider, E, R> {
    return Layer.merge(Layer.succeed(SessionPlugin, descriptor), provider)
  }

  /** Sessions and retained messages on disk in SQLite (`SqliteSessionStateProvider`). */
  static readonly sqlite: PluginDescriptor = { name: "sqlite-session", version: "0.1.0", vendor: "effect-mqtt-broker" }

  /** The SQLite session plugin as a Layer (`--persistence sqlite`); fails if the file cannot be used. */
  static layerSqlite(
    options: SqliteSessionStateProvider.Options
  ): Layer.Layer<SessionPlugin | SessionStateProvider | RetainedMessageStore | GroupCommit, SessionStoreError> {
    // loaded only when asked for: node:sqlite and the provider stay out of a memory broker's start
    const provider = Layer.unwrap(
      Effect.promise(() => import("../session/providers/SqliteSessionStateProvider.ts")).pipe(Effect.map((sqlite) => sqlite.layer(options)))
    )
    return Layer.merge(Layer.succeed(SessionPlugin, SessionPlugin.sqlite), provider)
  }

  /** Sessions in a Redis server (`RedisSessionStateProvider`); retained messages stay in memory. */
  static readonly redis: PluginDescriptor = { name: "redis-session", version: "0.1.0", vendor: "effect-mqtt-broker" }

  /** The Redis session plugin as a Layer (`--persistence redis`); fails if Redis cannot be reached. */
  static layerRedis(
    options: RedisSessionStateProvider.LayerOptions
  ): Layer.Layer<SessionPlugin | SessionStateProvider, SessionStoreError> {
    // loaded only when asked for: the Redis client is ~30 MB of RSS a memory broker never uses
    const provider = Layer.unwrap(
      Effect.promise(() => import("../session/providers/RedisSessionStateProvider.ts")).pipe(Effect.map((redis) => redis.layer(options)))
    )
    return SessionPlugin.make(SessionPlugin.redis, provider)
  }

  /** The memory session plugin as a Layer: what the node entrypoint provides by default. */
  static readonly layer: Layer.Layer<SessionPlugin | SessionStateProvider> = SessionPlugin.make(
    SessionPlugin.memory,
    MemorySessionStateProvider.layer
  )
}
