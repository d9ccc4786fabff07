/**
 * A cluster of two broker processes whose redis-server is restarted (empty: no persistence)
 * while they run: both stay up, write their filter sets again at their next heartbeat, and route
 * across nodes as before — for a subscription made before the restart and one made after.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import type { MqttClient } from "mqtt"
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createClient } from "redis"
import * as RedisServer from "../support/RedisServer.ts"
import { type BrokerProcess, connect, startBroker } from "./persistence-harness.ts"

const HEARTBEAT_MS = 200

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A redis-server on `port` (again), without persistence; resolves once it answers. */
const redisOn = async (port: number): Promise<ChildProcess> => {
  const binary = RedisServer.findRedisServer()
  if (binary === undefined) throw new Error("redis-server not found: install it with `apt-get install -y redis-server`")
  const dir = mkdtempSync(join(tmpdir(), "mqtt-cluster-restart-"))
  const child = spawn(binary, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" })
  child.once("exit", () => rmSync(dir, { recursive: true, force: true }))
  for (let i = 0; i < 100; i++) {
    const probe = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: false } })
    probe.on("error", () => {})
    try {
      await probe.connect()
      await probe.ping()
      await probe.close()
      return child
    } catch {
      await sleep(50)
    }
  }
  child.kill("SIGKILL")
  throw new Error(`redis-server did not answer on port ${port}`)
}

const stopped = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once("exit", () => resolve()))

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

/** Publishes on `publisher` until `received` has a message on `topic`; rejects after 10 s. */
const routedAgain = async (publisher: MqttClient, topic: string, received: Array<string>): Promise<void> => {
  const deadline = Date.now() + 10_000
  while (!received.includes(topic)) {
    if (Date.now() > deadline) throw new Error(`${topic} was not routed across nodes within 10 s`)
    publisher.publish(topic, "x", { qos: 0 })
    await sleep(50)
  }
}

describe("cluster: Redis restarted", () => {
  it("both nodes stay up, write their filters again, and route across nodes for subscriptions made before and after", async () => {
    // a free port, then our own redis-server on it (stopped and started again below)
    const first = await RedisServer.start()
    const port = first.port
    await first.stop()
    let redis = await redisOn(port)
    cleanup.push(async () => {
      redis.kill("SIGKILL")
      await stopped(redis)
    })
    const url = `redis://127.0.0.1:${port}`
    const args = ["--persistence", "redis", "--redis-url", url, "--cluster", "--cluster-heartbeat-ms", String(HEARTBEAT_MS)]
    const nodes: Array<BrokerProcess> = await Promise.all([startBroker(args, 30_000), startBroker(args, 30_000)])
    cleanup.push(async () => {
      for (const node of nodes) await node.kill9()
    })
    const [a, b] = nodes as [BrokerProcess, BrokerProcess]
    const received: Array<string> = []
    const clients: Array<MqttClient> = []
    cleanup.push(() => {
      for (const client of clients) client.end(true)
    })
    const { client: subscriber } = await connect(b.port, { clientId: `restart-sub-${randomUUID().slice(0, 8)}`, protocolVersion: 4 }, (topic) => received.push(topic))
    const { client: publisher } = await connect(a.port, { clientId: `restart-pub-${randomUUID().slice(0, 8)}`, protocolVersion: 4 })
    clients.push(subscriber, publisher)
    const before = `restart/before/${randomUUID()}`
    await subscriber.subscribeAsync(before, { qos: 0 })
    await routedAgain(publisher, before, received)

    redis.kill("SIGKILL")
    await stopped(redis)
    await sleep(HEARTBEAT_MS * 2)
    redis = await redisOn(port)
    // a few heartbeats to reconnect and write the filter sets again
    await sleep(HEARTBEAT_MS * 5)

    expect(a.child.exitCode).toBeNull()
    expect(b.child.exitCode).toBeNull()
    received.length = 0
    await routedAgain(publisher, before, received)
    const after = `restart/after/${randomUUID()}`
    await subscriber.subscribeAsync(after, { qos: 0 })
    await routedAgain(publisher, after, received)
    // B's filters are in the new Redis again: a node joining now would learn them
    const inspect = createClient({ url })
    await inspect.connect()
    const sets = await inspect.keys("mqtt:cluster:node:*:filters")
    const filters = (await Promise.all(sets.map((key) => inspect.sMembers(key)))).flat()
    await inspect.close()
    expect(filters).toContain(before)
    expect(filters).toContain(after)
  }, 60_000)
})
