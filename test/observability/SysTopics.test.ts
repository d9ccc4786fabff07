import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import * as SysTopics from "../../src/observability/SysTopics.ts"
import { VERSION, versionLine } from "../../src/observability/Version.ts"

const counts: SysTopics.Counts = {
  packetsReceived: 8,
  packetsSent: 94,
  bytesReceived: 79,
  bytesSent: 3703,
  publishReceived: 1,
  publishSent: 91,
  publishDropped: 2,
  publishBytesReceived: 4,
  publishBytesSent: 332,
  socketsAccepted: 3,
  connectionsAccepted: 3
}

const snapshot = (overrides: Partial<SysTopics.Snapshot> = {}): SysTopics.Snapshot => ({
  version: versionLine,
  uptimeSeconds: 2.7,
  counts,
  loads: SysTopics.initialLoads(counts, 0).loads,
  clientsConnected: 1,
  clientsMaximum: 2,
  sessions: 3,
  subscriptions: 1,
  retained: 54,
  outboxBytes: 10,
  connectionsRefused: 0,
  ...overrides
})

/** The topics Mosquitto 2.0.11 publishes (mosquitto -c sys_interval 1, `mosquitto_sub -t '$SYS/#'`) that we publish too. */
const MOSQUITTO_TOPICS = [
  "version", "uptime", "clients/total", "clients/disconnected", "clients/connected", "clients/maximum",
  ...["messages/received", "messages/sent", "publish/dropped", "publish/received", "publish/sent", "bytes/received", "bytes/sent", "sockets", "connections"]
    .flatMap((figure) => ["1min", "5min", "15min"].map((window) => `load/${figure}/${window}`)),
  "messages/received", "messages/sent", "subscriptions/count", "retained messages/count",
  "publish/messages/dropped", "publish/messages/received", "publish/messages/sent", "publish/bytes/received",
  "publish/bytes/sent", "bytes/received", "bytes/sent"
].map((topic) => `$SYS/broker/${topic}`)

describe("SysTopics: the $SYS tree's payloads", () => {
  it("uses Mosquitto's topic names, then ours, each once", () => {
    const topics = SysTopics.topics(snapshot()).map(([topic]) => topic)
    expect(topics.slice(0, MOSQUITTO_TOPICS.length).sort()).toEqual([...MOSQUITTO_TOPICS].sort())
    expect(topics.slice(MOSQUITTO_TOPICS.length)).toEqual([
      "$SYS/broker/sessions/count",
      "$SYS/broker/outbox/bytes",
      "$SYS/broker/connections/accepted",
      "$SYS/broker/connections/refused"
    ])
    expect(new Set(topics).size).toBe(topics.length)
  })

  it("formats as Mosquitto does: version line, whole seconds of uptime, decimal integers, loads with two decimals", () => {
    const loads = new Map(SysTopics.initialLoads(counts, 0).loads)
    loads.set("publish/received", { "1min": 0.98347, "5min": 0.2, "15min": 1 / 15 })
    const payloads = new Map(SysTopics.topics(snapshot({ loads })))
    expect(payloads.get("$SYS/broker/version")).toBe(`effect-mqtt-broker version ${VERSION}`)
    expect(payloads.get("$SYS/broker/uptime")).toBe("2 seconds")
    expect(payloads.get("$SYS/broker/load/publish/received/1min")).toBe("0.98")
    expect(payloads.get("$SYS/broker/load/publish/received/5min")).toBe("0.20")
    expect(payloads.get("$SYS/broker/load/publish/received/15min")).toBe("0.07")
    expect(payloads.get("$SYS/broker/load/bytes/sent/1min")).toBe("0.00")
    expect(payloads.get("$SYS/broker/messages/sent")).toBe("94")
    expect(payloads.get("$SYS/broker/bytes/sent")).toBe("3703")
    expect(payloads.get("$SYS/broker/publish/messages/dropped")).toBe("2")
    expect(payloads.get("$SYS/broker/retained messages/count")).toBe("54")
    expect(payloads.get("$SYS/broker/outbox/bytes")).toBe("10")
  })

  it("clients: total is the stored sessions (never fewer than the connected ones), disconnected the rest, maximum at least connected", () => {
    const of = (s: Partial<SysTopics.Snapshot>) => new Map(SysTopics.topics(snapshot(s)))
    const three = of({ sessions: 3, clientsConnected: 1, clientsMaximum: 2 })
    expect([three.get("$SYS/broker/clients/total"), three.get("$SYS/broker/clients/disconnected"), three.get("$SYS/broker/clients/maximum")]).toEqual(["3", "2", "2"])
    // sessions counted before a client connected: no negative disconnected count
    const stale = of({ sessions: 0, clientsConnected: 4, clientsMaximum: 1 })
    expect([stale.get("$SYS/broker/clients/total"), stale.get("$SYS/broker/clients/disconnected"), stale.get("$SYS/broker/clients/maximum")]).toEqual(["4", "0", "4"])
  })

  it("changed: everything the first time, then only what differs", () => {
    const first = SysTopics.topics(snapshot())
    expect(SysTopics.changed(new Map(), first)).toEqual(first)
    const later = SysTopics.topics(snapshot({ uptimeSeconds: 12, retained: 55 }))
    expect(SysTopics.changed(new Map(first), later)).toEqual([
      ["$SYS/broker/uptime", "12 seconds"],
      ["$SYS/broker/retained messages/count", "55"]
    ])
  })

  it("advanceLoads turns what was counted since the last update into per-minute loads", () => {
    const start = SysTopics.initialLoads(counts, 1_000)
    const later = SysTopics.advanceLoads(start, { ...counts, publishReceived: counts.publishReceived + 1 }, 2_000)
    expect(later.at).toBe(2_000)
    expect(later.loads.get("publish/received")!["1min"].toFixed(2)).toBe("0.99")
    expect(later.loads.get("publish/sent")!["1min"]).toBe(0)
    // no time elapsed: nothing changes
    expect(SysTopics.advanceLoads(later, counts, 2_000)).toBe(later)
  })

  it("the version is package.json's", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
    expect(VERSION).toBe(pkg.version)
  })
})
