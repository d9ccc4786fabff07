/**
 * Session takeover across two broker processes (`--persistence redis --cluster`) on one real
 * redis-server: a client id is live on one node at most. Connecting on B while live on A ends
 * the A connection (MQTT 5: DISCONNECT 0x8E) and resumes the session on B, whose router then
 * holds its subscriptions (A's no longer); two CONNECTs racing on A and B leave one connection.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import type { MqttClient } from "mqtt"
import { randomUUID } from "node:crypto"
import { sleep, until, useTwoNodes } from "./cluster-harness.ts"
import { type BrokerProcess, connect } from "./persistence-harness.ts"

const nodes = useTwoNodes()
let a: BrokerProcess
let b: BrokerProcess
const clients = nodes.clients
beforeAll(() => {
  a = nodes.a()
  b = nodes.b()
})

/** A client of `node` that records the payloads it receives on each topic. */
const open = async (node: BrokerProcess, options: Parameters<typeof connect>[1]) => {
  const received: Array<[string, string]> = []
  const opened = await connect(node.port, options, (topic, payload) => received.push([topic, payload.toString()]))
  clients.push(opened.client)
  return { ...opened, received, on: (topic: string) => received.filter(([t]) => t === topic).map(([, p]) => p) }
}

/** Publishes on `topic` through `publisher` until `arrived` says it got through (the filter reached the publisher's node). */
const routed = async (publisher: MqttClient, topic: string, arrived: () => boolean) => {
  for (let i = 0; i < 200 && !arrived(); i++) {
    await publisher.publishAsync(topic, "probe", { qos: 0 })
    await sleep(25)
  }
  if (!arrived()) throw new Error(`nothing published on ${topic} arrived`)
}

describe("cluster: takeover across nodes", () => {
  it("a client id live on A connecting on B: A's connection gets DISCONNECT 0x8E, B resumes the session, and what is published on A reaches it on B once", async () => {
    const clientId = `move-${randomUUID().slice(0, 8)}`
    const topic = `move/${randomUUID()}`
    const probe = `${topic}/probe`
    const first = await open(a, { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 300 } })
    await first.client.subscribeAsync([topic, probe], { qos: 1 })
    const disconnected = new Promise<number | undefined>((resolve) => first.client.once("disconnect", (packet) => resolve(packet.reasonCode)))

    const second = await open(b, { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 300 } })
    expect(second.sessionPresent).toBe(true)
    expect(await disconnected).toBe(0x8e)
    expect(b.output()).not.toMatch(/another node claimed this client/)

    const publisher = await open(a, { clientId: `move-pub-${randomUUID().slice(0, 8)}`, clean: true, protocolVersion: 5 })
    await routed(publisher.client, probe, () => second.on(probe).length > 0)
    for (let i = 0; i < 5; i++) await publisher.client.publishAsync(topic, String(i), { qos: 1 })
    await until("five messages on B", () => second.on(topic).length >= 5)
    await sleep(300)
    expect(second.on(topic)).toEqual(["0", "1", "2", "3", "4"])
    expect(first.on(topic)).toEqual([])
  }, 40_000)

  it("a persistent session offline on A whose client comes back on B: the messages queued meanwhile arrive on B, and later ones once each", async () => {
    const clientId = `offline-move-${randomUUID().slice(0, 8)}`
    const topic = `offline-move/${randomUUID()}`
    const first = await open(a, { clientId, clean: false, protocolVersion: 4 })
    await first.client.subscribeAsync(topic, { qos: 1 })
    await new Promise<void>((resolve) => first.client.end(false, {}, () => resolve()))
    const publisher = await open(a, { clientId: `offline-pub-${randomUUID().slice(0, 8)}`, clean: true, protocolVersion: 4 })
    for (let i = 0; i < 3; i++) await publisher.client.publishAsync(topic, `queued-${i}`, { qos: 1 })

    const back = await open(b, { clientId, clean: false, protocolVersion: 4 })
    expect(back.sessionPresent).toBe(true)
    await until("the three queued messages", () => back.on(topic).length >= 3)
    // the subscription moved to B: A forwards to B once B's filter has reached it
    await routed(publisher.client, topic, () => back.on(topic).includes("probe"))
    for (let i = 0; i < 3; i++) await publisher.client.publishAsync(topic, `later-${i}`, { qos: 1 })
    await until("the three later messages", () => back.on(topic).filter((p) => p.startsWith("later")).length >= 3)
    await sleep(300)
    expect(back.on(topic).filter((p) => p !== "probe")).toEqual(["queued-0", "queued-1", "queued-2", "later-0", "later-1", "later-2"])
  }, 40_000)

  it("the same client id connecting on A and on B at once, five times over: each time exactly one connection stays open", async () => {
    for (let round = 0; round < 5; round++) {
      const clientId = `race-${round}-${randomUUID().slice(0, 8)}`
      const options = { clientId, clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 60 } }
      const both = await Promise.all([open(a, options), open(b, options)])
      await until("one of the two closed", () => both.some((c) => !c.client.connected), 15_000)
      await sleep(500)
      expect(both.filter((c) => c.client.connected)).toHaveLength(1)
    }
  }, 90_000)
  it("a client moving from A to B while QoS 1 messages are published on both nodes: every acknowledged message reaches it, on A before the move or on B after", async () => {
    const clientId = `flow-${randomUUID().slice(0, 8)}`
    const topic = `flow/${randomUUID()}`
    const options = { clientId, clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 300 } }
    // every message either connection got (recorded from before its CONNACK: a resumed session's
    // queue may come in the same read)
    const connections: Array<{ on: (topic: string) => Array<string> }> = []
    const seenAll = () => new Set(connections.flatMap((c) => c.on(topic)))
    const first = await open(a, options)
    first.client.on("error", () => {})
    connections.push(first)
    await first.client.subscribeAsync(topic, { qos: 1 })
    const publishers = await Promise.all([a, b].map((node, i) => open(node, { clientId: `flow-pub-${i}-${randomUUID().slice(0, 8)}`, protocolVersion: 5 })))
    // B's publisher reaches the subscriber on A once A's filter reached B
    await routed(publishers[1]!.client, topic, () => seenAll().has("probe"))
    const acked = new Set<string>()
    let publishing = true
    const loops = publishers.map(async (publisher, i) => {
      for (let seq = 0; publishing; seq++) {
        const payload = `${i}-${seq}`
        await publisher.client.publishAsync(topic, payload, { qos: 1 }).then(() => acked.add(payload), () => sleep(10))
        await sleep(2)
      }
    })
    await until("traffic on A", () => seenAll().size > 100)
    const second = await open(b, options)
    connections.push(second)
    await until("traffic on B", () => second.on(topic).some((p) => p.startsWith("0-")) && second.on(topic).some((p) => p.startsWith("1-")))
    await sleep(500)
    publishing = false
    await Promise.all(loops)
    await until("every acknowledged message", () => Array.from(acked).every((p) => seenAll().has(p)), 15_000).catch(() => {})
    const seen = seenAll()
    expect(Array.from(acked).filter((p) => !seen.has(p))).toEqual([])
    expect(acked.size).toBeGreaterThan(200)
  }, 60_000)
})
