/**
 * The `$SYS/broker/...` tree as topic → payload pairs, with Mosquitto's names and value formats
 * where Mosquitto has the figure (integers as decimal text, loads with two decimals, uptime as
 * "N seconds", version as "<name> version <x.y.z>") and our own names for the rest. Pure: the
 * publisher (`SysPublisher`) gathers the figures and publishes what changed.
 */
import * as LoadAverage from "./LoadAverage.ts"

/** The counters the loads are computed from, as totals since the start. */
export interface Counts {
  readonly packetsReceived: number
  readonly packetsSent: number
  readonly bytesReceived: number
  readonly bytesSent: number
  readonly publishReceived: number
  readonly publishSent: number
  readonly publishDropped: number
  readonly publishBytesReceived: number
  readonly publishBytesSent: number
  readonly socketsAccepted: number
  readonly connectionsAccepted: number
}

/** Every load figure: its topic below `$SYS/broker/load/` and the count it is the rate of (Mosquitto's set). */
export const LOAD_FIGURES: ReadonlyArray<readonly [topic: string, count: keyof Counts]> = [
  ["messages/received", "packetsReceived"],
  ["messages/sent", "packetsSent"],
  ["publish/dropped", "publishDropped"],
  ["publish/received", "publishReceived"],
  ["publish/sent", "publishSent"],
  ["bytes/received", "bytesReceived"],
  ["bytes/sent", "bytesSent"],
  ["sockets", "socketsAccepted"],
  ["connections", "connectionsAccepted"]
]

/** The loads of every figure and the counts and time (ms) they were last computed at. */
export interface LoadState {
  readonly at: number
  readonly counts: Counts
  readonly loads: ReadonlyMap<string, LoadAverage.Loads>
}

/** Loads at the start: all zero, counted from `counts` at `at`. */
export const initialLoads = (counts: Counts, at: number): LoadState => ({
  at,
  counts,
  loads: new Map(LOAD_FIGURES.map(([topic]) => [topic, LoadAverage.zero]))
})

/** The loads after what was counted between `state.at` and `now`. */
export const advanceLoads = (state: LoadState, counts: Counts, now: number): LoadState => {
  const elapsed = (now - state.at) / 1000
  if (!(elapsed > 0)) return state
  const loads = new Map<string, LoadAverage.Loads>()
  for (const [topic, key] of LOAD_FIGURES) {
    // a counter never goes back; should one be reset, count from its new value
    const delta = Math.max(0, counts[key] - state.counts[key])
    loads.set(topic, LoadAverage.update(state.loads.get(topic) ?? LoadAverage.zero, delta, elapsed))
  }
  return { at: now, counts, loads }
}

/** Everything the `$SYS` tree reports at one moment. */
export interface Snapshot {
  /** "effect-mqtt-broker version 0.1.0". */
  readonly version: string
  readonly uptimeSeconds: number
  readonly counts: Counts
  readonly loads: ReadonlyMap<string, LoadAverage.Loads>
  readonly clientsConnected: number
  /** Most clients connected at once since the start. */
  readonly clientsMaximum: number
  /** Sessions the provider holds, connected or not (Mosquitto's clients/total). */
  readonly sessions: number
  readonly subscriptions: number
  readonly retained: number
  /** Bytes waiting to be written to clients, over every connection. */
  readonly outboxBytes: number
  readonly connectionsRefused: number
}

const integer = (value: number): string => String(Math.max(0, Math.trunc(value)))

/** The `$SYS` topics and payloads of a snapshot, in Mosquitto's order, ours last. */
export const topics = (s: Snapshot): Array<readonly [topic: string, payload: string]> => {
  const out: Array<readonly [string, string]> = [
    ["$SYS/broker/version", s.version],
    ["$SYS/broker/uptime", `${integer(s.uptimeSeconds)} seconds`],
    // a connected client's session is in the provider too; never report fewer sessions than clients
    ["$SYS/broker/clients/total", integer(Math.max(s.sessions, s.clientsConnected))],
    ["$SYS/broker/clients/disconnected", integer(s.sessions - s.clientsConnected)],
    ["$SYS/broker/clients/connected", integer(s.clientsConnected)],
    ["$SYS/broker/clients/maximum", integer(Math.max(s.clientsMaximum, s.clientsConnected))]
  ]
  for (const [figure] of LOAD_FIGURES) {
    const loads = s.loads.get(figure) ?? LoadAverage.zero
    for (const [window] of LoadAverage.WINDOWS) out.push([`$SYS/broker/load/${figure}/${window}`, loads[window].toFixed(2)])
  }
  out.push(
    ["$SYS/broker/messages/received", integer(s.counts.packetsReceived)],
    ["$SYS/broker/messages/sent", integer(s.counts.packetsSent)],
    ["$SYS/broker/subscriptions/count", integer(s.subscriptions)],
    ["$SYS/broker/retained messages/count", integer(s.retained)],
    ["$SYS/broker/publish/messages/dropped", integer(s.counts.publishDropped)],
    ["$SYS/broker/publish/messages/received", integer(s.counts.publishReceived)],
    ["$SYS/broker/publish/messages/sent", integer(s.counts.publishSent)],
    ["$SYS/broker/publish/bytes/received", integer(s.counts.publishBytesReceived)],
    ["$SYS/broker/publish/bytes/sent", integer(s.counts.publishBytesSent)],
    ["$SYS/broker/bytes/received", integer(s.counts.bytesReceived)],
    ["$SYS/broker/bytes/sent", integer(s.counts.bytesSent)],
    // ours: Mosquitto has no such topics
    ["$SYS/broker/sessions/count", integer(s.sessions)],
    ["$SYS/broker/outbox/bytes", integer(s.outboxBytes)],
    ["$SYS/broker/connections/accepted", integer(s.counts.connectionsAccepted)],
    ["$SYS/broker/connections/refused", integer(s.connectionsRefused)]
  )
  return out
}

/**
 * The pairs whose payload differs from the one last published (all of them the first time), as
 * Mosquitto publishes only what changed; the topics are retained, so a new subscriber still gets
 * every one.
 */
export const changed = (
  previous: ReadonlyMap<string, string>,
  next: ReadonlyArray<readonly [string, string]>
): Array<readonly [string, string]> => next.filter(([topic, payload]) => previous.get(topic) !== payload)
