/**
 * Slow consumers end to end, over real sockets (README "Slow consumers"):
 * - publishers blasting QoS 0 into one subscriber that reads as fast as it can lose nothing:
 *   a congested subscriber holds its publishers back instead of dropping;
 * - a subscriber that stops reading neither grows the broker's memory past the cap nor slows a
 *   healthy subscriber on the same topic; its drops are logged with its client id, and it is
 *   disconnected after `slowConsumerDisconnectMs`.
 * Small outbox limits make congestion certain, so without backpressure both tests would lose
 * messages. Deadlines below only bound a test that would otherwise hang; nothing is timed.
 */
import * as net from "node:net"
import { afterEach, assert, describe, it } from "@effect/vitest"
import { generate } from "mqtt-packet"
import type { BrokerConfig } from "../../src/config/BrokerConfig.ts"
import { startTestBroker, type TestBroker } from "../support/TestBroker.ts"

const KiB = 1024

const brokers: Array<TestBroker> = []
const sockets: Array<net.Socket> = []
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy()
  for (const broker of brokers.splice(0)) await broker.stop()
})

const start = async (config: Partial<BrokerConfig>) => {
  const broker = await startTestBroker(config)
  brokers.push(broker)
  return broker
}

/** Polls `condition` every 20 ms until it holds; fails with `what` after `ms`. */
const until = async (what: string, condition: () => boolean, ms = 60_000) => {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * A lean MQTT 3.1.1 client on a raw socket: CONNECT, optionally SUBSCRIBE at QoS 0, and every
 * received PUBLISH's payload handed to `onPublish` (no per-packet objects kept).
 */
const connect = async (
  port: number,
  clientId: string,
  onPublish: (payload: Buffer) => void = () => {}
) => {
  const socket = net.connect({ port, host: "127.0.0.1" })
  sockets.push(socket)
  socket.on("error", () => {})
  let buffered: Buffer = Buffer.alloc(0)
  const acks: Array<number> = []
  socket.on("data", (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
    let offset = 0
    for (;;) {
      if (buffered.length - offset < 2) break
      let length = 0
      let multiplier = 1
      let at = offset + 1
      let complete = false
      while (at < buffered.length) {
        const byte = buffered[at++]!
        length += (byte & 0x7f) * multiplier
        multiplier *= 128
        if ((byte & 0x80) === 0) {
          complete = true
          break
        }
      }
      if (!complete || at + length > buffered.length) break
      const type = buffered[offset]! >> 4
      if (type === 3) {
        const topicLength = buffered.readUInt16BE(at)
        onPublish(buffered.subarray(at + 2 + topicLength, at + length))
      } else {
        acks.push(type)
      }
      offset = at + length
    }
    buffered = offset === buffered.length ? Buffer.alloc(0) : buffered.subarray(offset)
  })
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve)
    socket.once("error", reject)
  })
  socket.write(generate({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clientId, clean: true, keepalive: 0 }))
  await until("CONNACK", () => acks.includes(2), 10_000)
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
  return {
    socket,
    closed,
    subscribe: async (topic: string) => {
      socket.write(generate({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic, qos: 0 }] }))
      await until("SUBACK", () => acks.includes(9), 10_000)
    }
  }
}

/** One publisher's messages, pre-encoded as one buffer: payload = publisher (u32), sequence (u32), padding. */
const blast = (topic: string, publisher: number, count: number, payloadBytes: number): Buffer => {
  const packets: Array<Buffer> = []
  for (let seq = 0; seq < count; seq++) {
    const payload = Buffer.alloc(payloadBytes)
    payload.writeUInt32BE(publisher, 0)
    payload.writeUInt32BE(seq, 4)
    packets.push(generate({ cmd: "publish", topic, payload, qos: 0, retain: false, dup: false }))
  }
  return Buffer.concat(packets)
}

/** Counts what arrived per publisher, by sequence number. */
const tally = (publishers: number, count: number) => {
  const seen = Array.from({ length: publishers }, () => new Uint8Array(count))
  const state = { received: 0, duplicates: 0, foreign: 0 }
  return {
    state,
    record: (payload: Buffer) => {
      const publisher = payload.readUInt32BE(0)
      const seq = payload.readUInt32BE(4)
      const row = seen[publisher]
      if (row === undefined || seq >= count) return void state.foreign++
      if (row[seq] === 1) state.duplicates++
      else {
        row[seq] = 1
        state.received++
      }
    },
    missing: () => seen.reduce((sum, row) => sum + row.length - row.reduce((a, b) => a + b, 0), 0)
  }
}

/** Numbers after `label` in the log lines that contain `marker`. */
const numbersAfter = (logs: ReadonlyArray<string>, marker: string, label: RegExp): Array<number> =>
  logs.filter((line) => line.includes(marker)).map((line) => Number(label.exec(line)?.[1]))

describe("slow consumers", () => {
  it("many publishers blasting QoS 0 into one subscriber that keeps reading lose nothing", async () => {
    const broker = await start({ outboxHighWaterBytes: 64 * KiB, maxOutboxBytes: 256 * KiB })
    const publishers = 16
    const count = 4000
    const received = tally(publishers, count)
    const subscriber = await connect(broker.port, "fast-sub", received.record)
    await subscriber.subscribe("blast/#")
    const clients = await Promise.all(Array.from({ length: publishers }, (_, p) => connect(broker.port, `pub-${p}`)))
    // all at once, as fast as each socket takes them: 16 × 4000 × ~110 bytes, far past the 256 KiB cap
    clients.forEach((client, p) => client.socket.write(blast(`blast/${p}`, p, count, 100)))
    await until("every message", () => received.state.received === publishers * count || broker.logs.some((l) => l.includes("slow consumer")))
    assert.deepStrictEqual(broker.logs.filter((line) => line.includes("slow consumer")), [], "no drops, no stall")
    assert.strictEqual(received.missing(), 0)
    assert.strictEqual(received.state.duplicates, 0)
    assert.strictEqual(received.state.foreign, 0)
  }, 120_000)

  it("a subscriber that stops reading stays within the cap, does not slow a healthy one, is logged and disconnected", async () => {
    const cap = 256 * KiB
    const broker = await start({
      outboxHighWaterBytes: 64 * KiB,
      maxOutboxBytes: cap,
      slowConsumerMs: 1000,
      slowConsumerDisconnectMs: 3000
    })
    const publishers = 4
    const count = 5000
    const healthy = tally(publishers, count)
    const stalled = await connect(broker.port, "stalled-sub")
    await stalled.subscribe("slow/#")
    // stop reading: the kernel buffers fill, then the broker's outbox for it
    stalled.socket.pause()
    const reader = await connect(broker.port, "healthy-sub", healthy.record)
    await reader.subscribe("slow/#")
    const clients = await Promise.all(Array.from({ length: publishers }, (_, p) => connect(broker.port, `slow-pub-${p}`)))
    // 4 × 5000 × ~1 KiB = 20 MiB: more than the kernel buffers of the paused socket hold
    clients.forEach((client, p) => client.socket.write(blast(`slow/${p}`, p, count, 1024)))

    await until("the healthy subscriber gets everything", () => healthy.state.received === publishers * count)
    assert.strictEqual(healthy.missing(), 0)
    assert.strictEqual(healthy.state.duplicates, 0)

    await until("the stalled subscriber is disconnected", () => broker.logs.some((l) => l.includes("closing the connection")))
    const reports = broker.logs.filter((line) => line.includes("slow consumer"))
    assert.isTrue(reports.length > 0)
    for (const line of reports) assert.include(line, "slow consumer stalled-sub:", "only the stalled subscriber is reported")
    const dropped = numbersAfter(broker.logs, "slow consumer stalled-sub", /, (\d+) in all/)
    assert.isTrue(dropped.some((n) => n > 0), `drops counted: ${reports.join("\n")}`)
    for (const peak of numbersAfter(broker.logs, "slow consumer stalled-sub", /peak (\d+)/)) {
      assert.isTrue(peak <= cap, `outbox peak ${peak} within the cap ${cap}`)
    }
    for (const waiting of numbersAfter(broker.logs, "slow consumer stalled-sub", /; (\d+) bytes waiting/)) {
      assert.isTrue(waiting <= cap, `${waiting} bytes waiting within the cap ${cap}`)
    }
    // the broker really closed it: reading again reaches the end of the stream
    stalled.socket.resume()
    await stalled.closed
    await until("its teardown", () => broker.logs.some((l) => l.includes("connection lost")), 10_000)
  }, 120_000)
})
