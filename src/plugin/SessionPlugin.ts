/**
 * A session plugin is a Layer that installs a `SessionStateProvider` and says who it is.
 * Providing the Layer is all the configuration there is: `SessionPlugin.layer` is the
 * in-memory default; `SessionPlugin.make` wraps any other provider Layer.
 */
import { Context, Layer } from "effect"
import * as MemorySessionStateProvider from "../session/MemorySessionStateProvider.ts"
import type { GroupCommit } from "../session/providers/GroupCommit.ts"
import type { RetainedMessageStore } from "../session/providers/RetainedMessageStore.ts"
import * as RedisSessionStateProvider from "../session/providers/RedisSessionStateProvider.ts"
import * as SqliteSessionStateProvider from "../session/providers/SqliteSessionStateProvider.ts"
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
    return Layer.merge(Layer.succeed(SessionPlugin, SessionPlugin.sqlite), SqliteSessionStateProvider.layer(options))
  }

  /** Sessions in a Redis server (`RedisSessionStateProvider`); retained messages stay in memory. */
  static readonly redis: PluginDescriptor = { name: "redis-session", version: "0.1.0", vendor: "effect-mqtt-broker" }

  /** The Redis session plugin as a Layer (`--persistence redis`); fails if Redis cannot be reached. */
  static layerRedis(
    options: RedisSessionStateProvider.LayerOptions
  ): Layer.Layer<SessionPlugin | SessionStateProvider, SessionStoreError> {
    return SessionPlugin.make(SessionPlugin.redis, RedisSessionStateProvider.layer(options))
  }

  /** The memory session plugin as a Layer: what the node entrypoint provides by default. */
  static readonly layer: Layer.Layer<SessionPlugin | SessionStateProvider> = SessionPlugin.make(
    SessionPlugin.memory,
    MemorySessionStateProvider.layer
  )
}
