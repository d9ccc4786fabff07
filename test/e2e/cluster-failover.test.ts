/**
 * A cluster node killed with `kill -9` while QoS 1 messages flow to the persistent sessions of its
 * clients (two broker processes, `--persistence redis --cluster`, one real redis-server). The
 * publisher is on A, the subscribers on B; B dies mid-stream; the subscribers reconnect to A. Every
 * message A acknowledged to the publisher must reach every subscriber — the ones B had forwarded
 * to it but not yet delivered, the ones sent to B's stream while it was dead, the ones queued for a
 * session that was offline when B died. Duplicates are allowed (QoS 1 is at least once).
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import type { MqttClient } from "mqtt"
import { randomUUID } from "node:crypto"
import { sleep, until as waitUntil, useTwoNodes } from "./cluster-harness.ts"
import { type BrokerProcess, connect, end } from "./persistence-harness.ts"

const nodes = useTwoNodes()
let a: BrokerProcess
let b: BrokerProcess
const clients = nodes.clients
beforeAll(() => {
  a = nodes.a()
  b = nodes.b()
})

/** `until`, with A's log in the message when it times out. */
const until = (what: string, check: () => boolean, timeoutMs = 20_000) => waitUntil(what, check, timeoutMs, () => a.output().slice(-3000))

/** A persistent subscriber: the sequence numbers it received, over all its connections. */
interface Subscriber {
  readonly clientId: string
  readonly protocolVersion: 4 | 5
  readonly seen: Set<number>
  received: number
  client: MqttClient | undefined
}

const subscriberOptions = (s: Subscriber) => ({
  clientId: s.clientId,
  clean: false,
  protocolVersion: s.protocolVersion,
  ...(s.protocolVersion === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {})
})

/** Connects `s` to `node`, recording what it receives on the test's topic. */
const attach = async (s: Subscriber, node: BrokerProcess, topic: string) => {
  const { client } = await connect(node.port, subscriberOptions(s), (received, payload) => {
    if (received !== topic) return
    s.received++
    s.seen.add(Number(payload.toString()))
  })
  // a dropped connection is not an error here: B is killed under it
  client.on("error", () => {})
  clients.push(client)
  s.client = client
  return client
}

describe("cluster: a node killed with -9 during QoS 1 traffic", () => {
  it("0 acknowledged messages lost: every message A acknowledged reaches the persistent sessions B held (live and offline) once their clients reconnect to A", async () => {
    const marker = randomUUID().slice(0, 8)
    const topic = `failover/${marker}`
    const live: Array<Subscriber> = [4, 5, 4].map((protocolVersion, i) => ({
      clientId: `fo-${marker}-${i}`,
      protocolVersion: protocolVersion as 4 | 5,
      seen: new Set(),
      received: 0,
      client: undefined
    }))
    const offline: Subscriber = { clientId: `fo-${marker}-off`, protocolVersion: 5, seen: new Set(), received: 0, client: undefined }
    for (const s of [...live, offline]) await (await attach(s, b, topic)).subscribeAsync(topic, { qos: 1 })

    // the publisher on A: sequence numbers, two in flight, a few hundred a second (every message
    // queued for an offline session rewrites that session in Redis), each recorded once acknowledged
    const { client: publisher } = await connect(a.port, { clientId: `fo-${marker}-pub` })
    clients.push(publisher)
    const acked = new Set<number>()
    let next = 0
    let publishing = true
    const publishLoop = async () => {
      while (publishing) {
        const seq = next++
        // a refused publish (A gone) must not spin: the timers that end the test still run
        await publisher.publishAsync(topic, String(seq), { qos: 1 }).then(() => acked.add(seq), () => sleep(10))
        await sleep(5)
      }
    }
    // B's filter reaches A first: until then A routes nothing to B
    for (let i = 0; i < 500 && live[0]!.received === 0; i++) {
      await publisher.publishAsync(topic, "-1", { qos: 1 })
      await sleep(20)
    }
    expect(live[0]!.received).toBeGreaterThan(0)
    await end(offline.client!)
    const loops = Array.from({ length: 2 }, publishLoop)

    await until("traffic through B", () => live.every((s) => s.received >= 50))
    await b.kill9()
    const killedAt = acked.size
    // the subscribers notice and come back on A, as clients of a cluster behind a load balancer would
    await sleep(100)
    for (const s of live) {
      await attach(s, a, topic).catch((error) => {
        throw new Error(`${s.clientId} could not reconnect to A: ${error}\n${a.output().slice(-4000)}`)
      })
    }
    await until("messages flowing again on A", () => live.every((s) => s.seen.has(next - 20)))
    await sleep(500)
    publishing = false
    await Promise.all(loops)
    await attach(offline, a, topic)

    const missing = (s: Subscriber) => Array.from(acked).filter((seq) => !s.seen.has(seq))
    await until("every acknowledged message at every subscriber", () => [...live, offline].every((s) => missing(s).length === 0))
    for (const s of [...live, offline]) expect(missing(s), a.output().slice(-3000)).toEqual([])
    // the test means something: messages were acknowledged before and after the kill
    expect(killedAt).toBeGreaterThan(50)
    expect(acked.size).toBeGreaterThan(killedAt + 50)
    // the adoption's last step (after delivering the dead node's stream) says how many sessions it took
    await until("A's adoption of B", () => /adopted node \S+: 4 sessions/.test(a.output()))
  }, 90_000)
})
