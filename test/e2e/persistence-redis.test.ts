/**
 * Sessions in Redis through a crash: the real entrypoint with `--persistence redis` against a
 * redis-server started for this file (`test/support/RedisServer.ts`; fails when there is none).
 * A persistent subscriber goes offline, QoS 1 messages are PUBACKed to the publisher, the broker
 * is killed with SIGKILL and a new one started on the same Redis: the subscriber resumes its
 * session (sessionPresent) and receives every acknowledged message. A Redis that cannot be reached
 * stops the start with one line naming it.
 */
import { describe, expect, it } from "@effect/vitest"
import { randomUUID } from "node:crypto"
import * as RedisServer from "../support/RedisServer.ts"
import { type BrokerProcess, connect, end, exited, spawnBroker, startBroker, useCleanup } from "./persistence-harness.ts"

const redisUrl = RedisServer.useRedisServer()

const { running, clients } = useCleanup()

/** The entrypoint with `--persistence redis --redis-url url`; resolves once it listens. */
const start = async (url: string): Promise<BrokerProcess> => {
  const broker = await startBroker(["--persistence", "redis", "--redis-url", url], 30_000)
  running.push(broker)
  return broker
}

describe("persistence: redis", () => {
  it("a persistent subscriber gets every acknowledged QoS 1 message from a new broker on the same Redis after kill -9, with its session present", async () => {
    const url = redisUrl()
    const clientId = `redis-e2e-${randomUUID()}`
    let broker = await start(url)
    const first = await connect(broker.port, { clientId, clean: false, protocolVersion: 4 })
    clients.push(first.client)
    await first.client.subscribeAsync("redis/data", { qos: 1 })
    await end(first.client)
    const { client: publisher } = await connect(broker.port, { clientId: `${clientId}-pub`, clean: true, protocolVersion: 4 })
    clients.push(publisher)
    for (let i = 0; i < 20; i++) await publisher.publishAsync("redis/data", String(i), { qos: 1 })
    publisher.end(true)
    await broker.kill9()

    broker = await start(url)
    const received = new Set<string>()
    let allReceived: () => void = () => {}
    const all = new Promise<void>((resolve) => (allReceived = resolve))
    const resumed = await connect(broker.port, { clientId, clean: false, protocolVersion: 4 }, (_topic, payload) => {
      received.add(payload.toString())
      if (received.size === 20) allReceived()
    })
    clients.push(resumed.client)
    expect(resumed.sessionPresent).toBe(true)
    await all
    expect([...received].map(Number).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i))
  }, 60_000)

  it("a Redis that cannot be reached stops the start: exit 1 and one line naming the server", async () => {
    const stopped = await RedisServer.start()
    await stopped.stop()
    const { child, output } = spawnBroker(["--host", "127.0.0.1", "--port", "0", "--persistence", "redis", "--redis-url", stopped.url])
    expect(await exited(child)).toBe(1)
    expect(output()).toMatch(new RegExp(`session store: cannot reach Redis at redis://127\\.0\\.0\\.1:${stopped.port}`))
    expect(output()).not.toMatch(/listening on/)
    // one refusal line (node-redis' connection error is also logged, as a warning, before it)
    expect(output().split("\n").filter((line) => line.startsWith("effect-mqtt-broker:"))).toHaveLength(1)
  }, 30_000)
})
