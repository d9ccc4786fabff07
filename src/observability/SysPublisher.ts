/**
 * Publishes the `$SYS/broker/...` tree (`SysTopics`) every `interval` seconds, retained at QoS 0,
 * through the broker's own publish path, so it reaches subscribers like any message (and `#` or
 * `+` never match it). Only changed values are published, as Mosquitto does; the first round
 * publishes every topic.
 */
import { Cause, Clock, Effect } from "effect"
import type { Message } from "../session/Message.ts"
import type { BrokerProbe } from "./BrokerProbe.ts"
import * as SysTopics from "./SysTopics.ts"
import { versionLine } from "./Version.ts"

/** The counters the loads are computed from, read now. */
export const counts = (probe: BrokerProbe): SysTopics.Counts => {
  const s = probe.stats
  return {
    packetsReceived: s.packetsReceived,
    packetsSent: s.packetsSent,
    bytesReceived: s.bytesReceived,
    bytesSent: s.bytesSent,
    publishReceived: s.publishReceived,
    publishSent: s.publishSent,
    publishDropped: probe.dropped(),
    publishBytesReceived: s.publishBytesReceived,
    publishBytesSent: s.publishBytesSent,
    socketsAccepted: s.socketsAccepted,
    connectionsAccepted: s.connectionsAccepted
  }
}

/** The `$SYS` snapshot of `probe` at `now` with the given loads. */
export const snapshot = (probe: BrokerProbe, loads: SysTopics.LoadState, now: number): SysTopics.Snapshot => ({
  version: versionLine,
  uptimeSeconds: (now - probe.startedAt) / 1000,
  counts: loads.counts,
  loads: loads.loads,
  clientsConnected: probe.clientsConnected(),
  clientsMaximum: probe.stats.maxConnected,
  sessions: probe.sessions(),
  subscriptions: probe.subscriptions(),
  retained: probe.retained(),
  outboxBytes: probe.outboxBytes(),
  connectionsRefused: probe.stats.connectionsRefused
})

/** Runs until interrupted: one round now, then one every `intervalSeconds`. */
export const run = <E>(
  probe: BrokerProbe,
  publish: (message: Message) => Effect.Effect<void, E>,
  intervalSeconds: number
): Effect.Effect<never> =>
  Effect.gen(function*() {
    let loads = SysTopics.initialLoads(counts(probe), probe.startedAt)
    let published: ReadonlyMap<string, string> = new Map()
    while (true) {
      yield* probe.countSessions
      const now = yield* Clock.currentTimeMillis
      loads = SysTopics.advanceLoads(loads, counts(probe), now)
      const pairs = SysTopics.topics(snapshot(probe, loads, now))
      for (const [topic, payload] of SysTopics.changed(published, pairs)) {
        yield* publish({ topic, payload: Buffer.from(payload), qos: 0, retain: true }).pipe(
          // one failed delivery (a store error queueing for an offline session) does not stop the tree
          Effect.catchCause((cause) => Effect.logWarning(`$SYS: publishing ${topic} failed`, Cause.squash(cause)))
        )
      }
      published = new Map(pairs)
      yield* Effect.sleep(intervalSeconds * 1000)
    }
  })
