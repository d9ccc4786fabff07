/**
 * A QoS 1 stream through the broker's fast path (a delivery or an ack as one synchronous section
 * while the client's lock is free) and its fallback (an Effect waiting for the lock while a
 * CONNECT holds it): nothing lost, nothing out of order, for subscribers that stay and for one
 * that takes its persistent session over again and again in the middle of the stream.
 */
import { describe, expect, it } from "@effect/vitest"
import { sleep, type TestClient, useE2E } from "./harness.ts"

const e2e = useE2E()

const N = 1500
const TOPIC = "stream/q1"

describe("QoS 1 stream", () => {
  it("steady subscribers get every message once and in order, and one taking its session over 6 times mid-stream gets every message, its first sends in order", async () => {
    const broker = await e2e.broker({ maxQueuedMessages: N })
    const steady: Array<TestClient> = []
    for (let i = 0; i < 4; i++) {
      const client = await e2e.client(broker)
      expect(await client.subscribe(TOPIC, 1)).toEqual([1])
      steady.push(client)
    }
    const connections: Array<TestClient> = [await e2e.client(broker, { clientId: "stream-hopper", clean: false })]
    expect(await connections[0]!.subscribe(TOPIC, 1)).toEqual([1])

    const publisher = await e2e.client(broker)
    const published = Promise.all(Array.from({ length: N }, (_, i) => publisher.publish(TOPIC, String(i), { qos: 1 })))
    // takeovers while the stream runs: each CONNECT holds the client's lock while deliveries arrive
    for (let k = 0; k < 6; k++) {
      await sleep(15)
      connections.push(await e2e.client(broker, { clientId: "stream-hopper", clean: false }))
    }
    await published

    const all = Array.from({ length: N }, (_, i) => String(i))
    for (const client of steady) {
      const received = await client.waitForMessages(N, { timeoutMs: 10_000 })
      expect(received.map((m) => m.payload)).toEqual(all)
    }
    const last = connections[connections.length - 1]!
    await last.waitForMessages(1, { timeoutMs: 10_000, filter: (m) => m.payload === String(N - 1) })
    const everything = connections.flatMap((c) => c.messages)
    expect(new Set(everything.map((m) => m.payload))).toEqual(new Set(all))
    // each message is first sent once (DUP=0), in publish order; a resend after a takeover has DUP=1
    const firstSends = everything.filter((m) => !m.dup).map((m) => Number(m.payload))
    expect(firstSends.every((n, i) => i === 0 || n > firstSends[i - 1]!)).toBe(true)
    expect(connections.slice(0, -1).every((c) => c.isClosed)).toBe(true)
    // the takeovers did land mid-stream
    expect(connections.filter((c) => c.messages.length > 0).length).toBeGreaterThan(2)
  })
})
