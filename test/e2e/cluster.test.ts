/**
 * Two broker processes (the real entrypoint with `--persistence redis --cluster`) on one real
 * redis-server act as one broker: a message published on A reaches B's subscribers with the
 * same QoS downgrade, retain handling, one copy for overlapping subscriptions and order as on
 * one node; retained messages and wills cross too; a shared subscription with members on both
 * nodes gets each message once. What goes to each node is observed on Redis itself (a client
 * subscribed to every node's channel): nothing goes to a node without a matching subscriber,
 * nor to a node whose heartbeat stopped.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import type { MqttClient } from "mqtt"
import { randomUUID } from "node:crypto"
import { createClient } from "redis"
import * as Envelope from "../../src/cluster/Envelope.ts"
import * as RedisServer from "../support/RedisServer.ts"
import { type BrokerProcess, connect, exited, type OnMessage, spawnBroker, startBroker } from "./persistence-harness.ts"

const redisUrl = RedisServer.useRedisServer()

/** Heartbeats of the test nodes: a dead node is forgotten after three (0.6 s). */
const HEARTBEAT_MS = 200

/** A node of the test cluster: the process and its node id (from its "cluster: node … joined" line). */
interface Node {
  readonly broker: BrokerProcess
  readonly id: string
}

const startNode = async (url: string): Promise<Node> => {
  const broker = await startBroker(["--persistence", "redis", "--redis-url", url, "--cluster", "--cluster-heartbeat-ms", String(HEARTBEAT_MS)], 30_000)
  const id = /cluster: node (\S+) joined/.exec(broker.output())?.[1]
  if (id === undefined) throw new Error(`no "cluster: node … joined" line\n${broker.output()}`)
  return { broker, id }
}

/** What one client received, in order. */
interface Received {
  readonly topic: string
  readonly payload: string
  readonly qos: number
  readonly retain: boolean
}

/** A connected client and everything it receives. */
interface Client {
  readonly mqtt: MqttClient
  readonly received: Array<Received>
}

const clients: Array<MqttClient> = []

const client = async (node: Node, options: Parameters<typeof connect>[1] = {}): Promise<Client> => {
  const received: Array<Received> = []
  const onMessage: OnMessage = (topic, payload, packet) =>
    received.push({ topic, payload: payload.toString(), qos: (packet as { qos?: number }).qos ?? 0, retain: packet.retain })
  const { client: mqtt } = await connect(node.broker.port, { clientId: `cluster-${randomUUID().slice(0, 8)}`, protocolVersion: 5, ...options }, onMessage)
  clients.push(mqtt)
  return { mqtt, received }
}

/** Resolves once `check` holds, polling; rejects with `what` after `timeoutMs`. */
const until = async (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Waits until `publisher`'s node routes to `subscriber`'s filters: the subscriber also subscribes
 * to a fresh probe topic, last, and the publisher sends to it until one arrives. Filter changes
 * reach a peer in the order they were made, so the earlier filters are known there too.
 */
const routed = async (publisher: Client, subscriber: Client): Promise<void> => {
  const probe = `probe/${randomUUID()}`
  await subscriber.mqtt.subscribeAsync(probe, { qos: 0 })
  const arrived = () => subscriber.received.some((message) => message.topic === probe)
  const deadline = Date.now() + 10_000
  while (!arrived()) {
    if (Date.now() > deadline) throw new Error("the subscription never reached the publisher's node")
    await publisher.mqtt.publishAsync(probe, "probe", { qos: 0 })
    await sleep(20)
  }
  await subscriber.mqtt.unsubscribeAsync(probe)
}

const on = (c: Client, topic: string) => c.received.filter((message) => message.topic === topic)

/** The arguments of a command as MONITOR prints it (`<time> [db addr] "arg" "arg" …`, C-style escapes). */
const monitorArgs = (line: string): Array<string> => {
  const args: Array<string> = []
  let i = line.indexOf("]") + 1
  while (i < line.length) {
    const start = line.indexOf("\"", i)
    if (start < 0) break
    let arg = ""
    let j = start + 1
    for (; j < line.length && line[j] !== "\""; j++) {
      if (line[j] !== "\\") {
        arg += line[j]
        continue
      }
      const next = line[++j]
      if (next === "x") {
        arg += String.fromCharCode(parseInt(line.slice(j + 1, j + 3), 16))
        j += 2
      } else arg += ({ n: "\n", r: "\r", t: "\t", a: "\x07", b: "\b" } as Record<string, string>)[next!] ?? next
    }
    args.push(arg)
    i = j + 1
  }
  return args
}

/** Counts what Redis is asked to carry to each node: a client watching every command (MONITOR) for sends to a node's stream. */
const channelWatch = async (url: string) => {
  const watcher = createClient({ url })
  await watcher.connect()
  const counts = new Map<string, Array<string>>()
  await watcher.monitor((line: string) => {
    // EVAL <send script> 2 <stream> <gone> <node prefix> <node> b <batch>
    const args = monitorArgs(line)
    if (args[0]?.toUpperCase() !== "EVAL" || args[2] !== "2" || args[7] !== "b" || !args[3]?.endsWith(":stream")) return
    const list = counts.get(args[6]!) ?? []
    list.push(args[8]!)
    counts.set(args[6]!, list)
  })
  return {
    /** The messages forwarded to `node` (in batches) whose topic contains `marker`. */
    to: (node: Node, marker: string) =>
      (counts.get(node.id) ?? [])
        .flatMap((text) => Envelope.decodeBatch(text)?.forwarded ?? [])
        .filter((forwarded) => forwarded.message.topic.includes(marker)).length,
    close: () => watcher.close()
  }
}

let a: Node
let b: Node

beforeAll(async () => {
  const url = redisUrl()
  ;[a, b] = await Promise.all([startNode(url), startNode(url)])
}, 60_000)

afterAll(async () => {
  for (const c of clients.splice(0)) c.end(true)
  await Promise.all([a?.broker.kill9(), b?.broker.kill9()])
})

describe("cluster: two brokers on one Redis", () => {
  it("a message published on A reaches B's subscriber at QoS 0, 1 and 2, each at min(published, granted)", async () => {
    const topic = `c/qos/${randomUUID()}`
    const subscriber = await client(b)
    await subscriber.mqtt.subscribeAsync({ [`${topic}/2`]: { qos: 2 }, [`${topic}/1`]: { qos: 1 } })
    const publisher = await client(a)
    await routed(publisher, subscriber)
    for (const qos of [0, 1, 2] as const) {
      await publisher.mqtt.publishAsync(`${topic}/2`, `at2-${qos}`, { qos })
      await publisher.mqtt.publishAsync(`${topic}/1`, `at1-${qos}`, { qos })
    }
    await until("six messages on B", () => subscriber.received.filter((m) => m.topic.startsWith(topic)).length === 6)
    expect(on(subscriber, `${topic}/2`).map((m) => [m.payload, m.qos])).toEqual([["at2-0", 0], ["at2-1", 1], ["at2-2", 2]])
    // granted 1: a QoS 2 message is delivered at QoS 1
    expect(on(subscriber, `${topic}/1`).map((m) => [m.payload, m.qos])).toEqual([["at1-0", 0], ["at1-1", 1], ["at1-2", 1]])
  }, 30_000)

  it("MQTT 5 properties cross nodes (user properties, content type) and B adds its subscriber's Subscription Identifier", async () => {
    const topic = `c/v5/${randomUUID()}`
    const subscriber = await client(b)
    const packets: Array<{ properties?: Record<string, unknown> | undefined }> = []
    subscriber.mqtt.on("message", (t, _payload, packet) => {
      if (t === topic) packets.push(packet as { properties?: Record<string, unknown> })
    })
    await subscriber.mqtt.subscribeAsync(topic, { qos: 1, properties: { subscriptionIdentifier: 7 } })
    const publisher = await client(a)
    await routed(publisher, subscriber)
    await publisher.mqtt.publishAsync(topic, "p", { qos: 1, properties: { userProperties: { k: "v" }, contentType: "text/plain" } })
    await until("the message on B", () => packets.length === 1)
    expect(packets[0]!.properties).toMatchObject({ userProperties: { k: "v" }, contentType: "text/plain", subscriptionIdentifier: 7 })
  }, 30_000)

  // MQTT orders messages per topic and QoS (MQTT 5 §4.6, 3.1.1 §4.6): a QoS 1 message waits in the
  // session queue while the subscriber's in-flight window is full, a QoS 0 one does not, so the two
  // may interleave differently than published. Mosquitto does the same (QoS 0 is never queued for an
  // online client), so the order is checked per QoS.
  it("messages from one publisher on one topic arrive on the other node in the order they were published within each QoS, once each, for overlapping filters too", async () => {
    const topic = `c/order/${randomUUID()}`
    const subscriber = await client(b)
    // three filters match: still one copy per message
    await subscriber.mqtt.subscribeAsync({ [topic]: { qos: 1 }, [`${topic.split("/").slice(0, 2).join("/")}/#`]: { qos: 0 }, "c/order/+": { qos: 1 } })
    const publisher = await client(a)
    await routed(publisher, subscriber)
    const count = 300
    const sent: Array<Promise<unknown>> = []
    for (let i = 0; i < count; i++) sent.push(publisher.mqtt.publishAsync(topic, String(i), { qos: (i % 2) as 0 | 1 }))
    await Promise.all(sent)
    await until(`${count} messages on B`, () => on(subscriber, topic).length >= count)
    await sleep(100)
    const received = on(subscriber, topic)
    // the overlapping filters give QoS 1 (max of the matches), so each message keeps its own QoS
    for (const qos of [0, 1]) {
      expect(received.filter((m) => m.qos === qos).map((m) => Number(m.payload))).toEqual(
        Array.from({ length: count }, (_, i) => i).filter((i) => i % 2 === qos)
      )
    }
    expect(received).toHaveLength(count)
  }, 30_000)

  it("a message retained on A is sent to a later subscriber on B with RETAIN=1, and a clear on A is seen on B", async () => {
    const topic = `c/retained/${randomUUID()}`
    const publisher = await client(a)
    await publisher.mqtt.publishAsync(topic, "kept", { qos: 1, retain: true })
    // the change reaches B through Redis; a subscriber there sees it once it has arrived
    let late: Client | undefined
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const c = await client(b)
      await c.mqtt.subscribeAsync(topic, { qos: 1 })
      await sleep(50)
      if (on(c, topic).length > 0) {
        late = c
        break
      }
      c.mqtt.end(true)
      await sleep(50)
    }
    expect(late).toBeDefined()
    expect(on(late!, topic)).toEqual([{ topic, payload: "kept", qos: 1, retain: true }])

    // live delivery to B of a retained message: RETAIN=0 (MQTT 3.1.1 / v5 without Retain As Published)
    await publisher.mqtt.publishAsync(topic, "replaced", { qos: 1, retain: true })
    await until("the live copy on B", () => on(late!, topic).length === 2)
    expect(on(late!, topic)[1]).toEqual({ topic, payload: "replaced", qos: 1, retain: false })

    await publisher.mqtt.publishAsync(topic, "", { qos: 1, retain: true })
    await sleep(300)
    const after = await client(b)
    await after.mqtt.subscribeAsync(topic, { qos: 1 })
    // a barrier through B itself: anything retained would have come before this
    const own = `c/barrier/${randomUUID()}`
    await after.mqtt.subscribeAsync(own, { qos: 1 })
    await after.mqtt.publishAsync(own, "x", { qos: 1 })
    await until("the barrier", () => on(after, own).length === 1)
    expect(on(after, topic)).toEqual([])
  }, 40_000)

  it("the will of a client of A whose connection drops reaches B's subscriber", async () => {
    const topic = `c/will/${randomUUID()}`
    const subscriber = await client(b)
    await subscriber.mqtt.subscribeAsync(topic, { qos: 1 })
    const publisher = await client(a)
    await routed(publisher, subscriber)
    const dying = await client(a, { will: { topic, payload: Buffer.from("gone"), qos: 1, retain: false } })
    dying.mqtt.stream.destroy()
    await until("the will on B", () => on(subscriber, topic).length === 1)
    expect(on(subscriber, topic)[0]).toMatchObject({ payload: "gone", qos: 1 })
  }, 30_000)

  it("an offline persistent session held by B queues what is published on A, and gets it when its client comes back to B", async () => {
    const topic = `c/offline/${randomUUID()}`
    const clientId = `cluster-offline-${randomUUID().slice(0, 8)}`
    const first = await client(b, { clientId, clean: false, protocolVersion: 4 })
    await first.mqtt.subscribeAsync(topic, { qos: 1 })
    const publisher = await client(a)
    await routed(publisher, first)
    await new Promise<void>((resolve) => first.mqtt.end(false, {}, () => resolve()))
    for (let i = 0; i < 5; i++) await publisher.mqtt.publishAsync(topic, String(i), { qos: 1 })
    const back = await client(b, { clientId, clean: false, protocolVersion: 4 })
    await until("the five queued messages", () => on(back, topic).length === 5)
    expect(on(back, topic).map((m) => m.payload)).toEqual(["0", "1", "2", "3", "4"])
  }, 30_000)

  it("a node joining live peers leaves the stored sessions to them: an offline session gets each message once, not once per node", async () => {
    const topic = `c/once/${randomUUID()}`
    const clientId = `cluster-once-${randomUUID().slice(0, 8)}`
    const first = await client(b, { clientId, clean: false, protocolVersion: 4 })
    await first.mqtt.subscribeAsync(topic, { qos: 1 })
    const publisher = await client(a)
    await routed(publisher, first)
    await new Promise<void>((resolve) => first.mqtt.end(false, {}, () => resolve()))
    // a third node starts while the session is stored in Redis, offline
    const late = await startNode(redisUrl())
    try {
      expect(late.broker.output()).toMatch(/other nodes are alive, so the stored sessions' subscriptions stay with them/)
      await sleep(HEARTBEAT_MS * 2)
      for (let i = 0; i < 5; i++) await publisher.mqtt.publishAsync(topic, String(i), { qos: 1 })
      const back = await client(b, { clientId, clean: false, protocolVersion: 4 })
      await until("the five queued messages", () => on(back, topic).length >= 5)
      await sleep(300)
      expect(on(back, topic).map((m) => m.payload)).toEqual(["0", "1", "2", "3", "4"])
    } finally {
      await late.broker.kill9()
    }
  }, 40_000)

  it("a shared subscription with members on A and B gets each message once, some on each node", async () => {
    const topic = `c/shared/${randomUUID()}`
    const group = `$share/g${randomUUID().slice(0, 6)}/${topic}`
    const onA = await client(a)
    const onB = await client(b)
    await onA.mqtt.subscribeAsync(group, { qos: 1 })
    await onB.mqtt.subscribeAsync(group, { qos: 1 })
    const publisher = await client(a)
    await routed(publisher, onB)
    const count = 40
    for (let i = 0; i < count; i++) await publisher.mqtt.publishAsync(topic, String(i), { qos: 1 })
    await until("every message once", () => on(onA, topic).length + on(onB, topic).length >= count)
    await sleep(200)
    const all = [...on(onA, topic), ...on(onB, topic)].map((m) => Number(m.payload)).sort((x, y) => x - y)
    expect(all).toEqual(Array.from({ length: count }, (_, i) => i))
    expect(on(onA, topic).length).toBeGreaterThan(0)
    expect(on(onB, topic).length).toBeGreaterThan(0)
  }, 30_000)

  it("nothing is sent to a node without a matching subscriber: B's channel carries only what B's filters match", async () => {
    const watch = await channelWatch(redisUrl())
    try {
      const marker = randomUUID()
      const local = await client(a)
      await local.mqtt.subscribeAsync(`c/only-a/${marker}`, { qos: 0 })
      const remote = await client(b)
      await remote.mqtt.subscribeAsync(`c/both/${marker}`, { qos: 0 })
      const also = await client(a)
      await also.mqtt.subscribeAsync(`c/both/${marker}`, { qos: 0 })
      const publisher = await client(a)
      await routed(publisher, remote)
      for (let i = 0; i < 10; i++) {
        await publisher.mqtt.publishAsync(`c/only-a/${marker}`, "a", { qos: 1 })
        await publisher.mqtt.publishAsync(`c/both/${marker}`, "b", { qos: 1 })
      }
      await until("B's ten", () => on(remote, `c/both/${marker}`).length === 10)
      await until("A's twenty", () => on(local, `c/only-a/${marker}`).length === 10 && on(also, `c/both/${marker}`).length === 10)
      await sleep(100)
      expect(watch.to(b, `c/both/${marker}`)).toBe(10)
      expect(watch.to(b, `c/only-a/${marker}`)).toBe(0)
      // A's own subscribers are served locally: nothing on A's channel
      expect(watch.to(a, marker)).toBe(0)
    } finally {
      await watch.close()
    }
  }, 30_000)

  it("a node joining later has the retained messages and the others' filters at once; killed with -9, it stops attracting messages once a live node has adopted it", async () => {
    const watch = await channelWatch(redisUrl())
    const marker = randomUUID()
    const publisher = await client(a)
    await publisher.mqtt.publishAsync(`c/joined/${marker}`, "before", { qos: 1, retain: true })
    const early = await client(a)
    await early.mqtt.subscribeAsync(`c/early/${marker}`, { qos: 1 })
    await sleep(100)
    const doomed = await startNode(redisUrl())
    try {
      // A's filters were read from Redis when it joined: a publish there reaches A's earlier subscriber
      const there = await client(doomed)
      await there.mqtt.publishAsync(`c/early/${marker}`, "from-new", { qos: 1 })
      await until("the new node's message on A", () => on(early, `c/early/${marker}`).length === 1)

      const topic = `c/dead/${marker}`
      const subscriber = await client(doomed)
      // read from Redis when it joined: no announcement needed
      await subscriber.mqtt.subscribeAsync(`c/joined/${marker}`, { qos: 1 })
      await until("the retained message on the new node", () => on(subscriber, `c/joined/${marker}`).length === 1)
      expect(on(subscriber, `c/joined/${marker}`)[0]).toMatchObject({ payload: "before", retain: true })
      await subscriber.mqtt.subscribeAsync(topic, { qos: 0 })
      await routed(publisher, subscriber)
      await publisher.mqtt.publishAsync(topic, "alive", { qos: 1 })
      await until("the message on the doomed node", () => on(subscriber, topic).length === 1)
      subscriber.mqtt.end(true)
      await doomed.broker.kill9()
      // three heartbeats without it, one more for a peer to notice, one to be sure; then one adopts it
      await until("A or B adopting the killed node", () => [a, b].some((node) => node.broker.output().includes(`adopted node ${doomed.id}`)))
      const before = watch.to(doomed, topic)
      for (let i = 0; i < 5; i++) await publisher.mqtt.publishAsync(topic, "dead", { qos: 1 })
      await sleep(100)
      expect(before).toBe(1)
      expect(watch.to(doomed, topic)).toBe(1)
    } finally {
      await doomed.broker.kill9()
      await watch.close()
    }
  }, 40_000)

  it("a node stopped with SIGTERM leaves at once: its id, heartbeat and filters are gone from Redis when it has exited", async () => {
    const leaving = await startNode(redisUrl())
    try {
      const subscriber = await client(leaving)
      await subscriber.mqtt.subscribeAsync(`c/leaving/${randomUUID()}`, { qos: 0 })
      const inspect = createClient({ url: redisUrl() })
      await inspect.connect()
      try {
        const deadline = Date.now() + 5000
        while ((await inspect.sCard(`mqtt:cluster:node:${leaving.id}:filters`)) === 0 && Date.now() < deadline) await sleep(20)
        expect(await inspect.sIsMember("mqtt:cluster:nodes", leaving.id)).toBeTruthy()
        expect(await inspect.sCard(`mqtt:cluster:node:${leaving.id}:filters`)).toBe(1)
        subscriber.mqtt.end(true)
        leaving.broker.child.kill("SIGTERM")
        expect(await exited(leaving.broker.child)).toBe(0)
        expect(await inspect.sIsMember("mqtt:cluster:nodes", leaving.id)).toBeFalsy()
        expect(await inspect.exists([`mqtt:cluster:node:${leaving.id}:alive`, `mqtt:cluster:node:${leaving.id}:filters`])).toBe(0)
      } finally {
        await inspect.close()
      }
    } finally {
      await leaving.broker.kill9()
    }
  }, 30_000)

  it("--cluster without --persistence redis is refused: exit 2, one line naming the key, nothing started", async () => {
    const { child, output } = spawnBroker(["--host", "127.0.0.1", "--port", "0", "--cluster"])
    expect(await exited(child)).toBe(2)
    expect(output()).toMatch(/--cluster needs --persistence \(MQTT_PERSISTENCE\) redis/)
    expect(output()).not.toMatch(/listening on/)
    expect(output().trim().split("\n")).toHaveLength(1)
  }, 30_000)
})
