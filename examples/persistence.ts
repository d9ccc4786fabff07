import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { Broker, SessionPlugin, SqliteSessionStateProvider } from "effect-mqtt-broker"

// sessions (with their queued QoS 1/2 messages) and retained messages in one SQLite file
const OnDisk = SessionPlugin.layerSqlite({ file: "/var/lib/mqtt/broker.db" })

// or the bare provider, with an fsync per commit so that even power loss loses nothing acknowledged
export const OnDiskFsync = SqliteSessionStateProvider.layer({ file: "/var/lib/mqtt/broker.db", synchronous: "full" })

Broker.layer({ port: 1883 }).pipe(Layer.provide(OnDisk), Layer.launch, NodeRuntime.runMain)
