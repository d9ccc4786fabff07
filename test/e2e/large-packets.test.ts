/**
 * Large packets cost their sender, not everyone: received in linear time, bounded across all
 * connections by maxReceivingBytes (a packet that does not fit waits, its socket unread), and a
 * bad CONNECT gets the answer the spec names.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import mqtt from "mqtt"
import type { IConnackPacket, IPubackPacket } from "mqtt-packet"
import { startTestBroker } from "../support/TestBroker.ts"
import { encodeConnect, encodePacket, encodeString, encodeU16, RawClient, sleep, useE2E } from "./harness.ts"

const e2e = useE2E()

const digest = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/** A QoS 1 PUBLISH of `size` payload bytes as a raw 3.1.1 packet. */
const publishPacket = (topic: string, id: number, payload: Buffer) =>
  encodePacket(0x32, Buffer.concat([encodeString(topic), encodeU16(id), payload]))

const openRaw = async (port: number, clientId: string) => {
  const raw = await RawClient.open(port)
  e2e.defer(() => raw.destroy())
  raw.write(encodeConnect({ clientId }))
  expect(((await raw.next("connack")) as IConnackPacket).returnCode).toBe(0)
  return raw
}

describe("large packets", () => {
  it("a 16 MB QoS 1 PUBLISH is acknowledged and delivered intact at the default limits, while another client's PINGREQ is answered", async () => {
    const broker = await startTestBroker()
    e2e.defer(() => broker.stop())
    const payload = Buffer.alloc(16_000_000)
    for (let i = 0; i < payload.length; i += 4096) payload[i] = (i / 4096) & 0xff
    const subscriber = mqtt.connect(broker.url, { clientId: "big-sub", reconnectPeriod: 0 })
    e2e.defer(() => void subscriber.end(true))
    const received = new Promise<Buffer>((resolve) => subscriber.on("message", (_topic, bytes) => resolve(bytes)))
    await new Promise<void>((resolve, reject) => subscriber.subscribe("big/t", { qos: 1 }, (error) => (error ? reject(error) : resolve())))
    const publisher = mqtt.connect(broker.url, { clientId: "big-pub", reconnectPeriod: 0 })
    e2e.defer(() => void publisher.end(true))
    await new Promise((resolve) => publisher.once("connect", resolve))
    const pinger = await openRaw(broker.port, "pinger")
    const acked = new Promise<void>((resolve, reject) => publisher.publish("big/t", payload, { qos: 1 }, (error) => (error ? reject(error) : resolve())))
    await pinger.ping(5_000)
    await acked
    expect(digest(await received)).toBe(digest(payload))
  }, 30_000)

  it("large packets beyond maxReceivingBytes wait their turn with their sockets unread: each completes, later, and small clients are served meanwhile", async () => {
    const broker = await startTestBroker({ maxPacketSize: 2_000_000, maxReceivingBytes: 2_000_000 })
    e2e.defer(() => broker.stop())
    const subscriber = await openRaw(broker.port, "sub")
    subscriber.write(encodePacket(0x82, Buffer.concat([encodeU16(1), encodeString("up/#"), Buffer.from([1])])))
    await subscriber.next("suback")
    const first = await openRaw(broker.port, "first")
    const second = await openRaw(broker.port, "second")
    const a = publishPacket("up/a", 1, Buffer.alloc(1_500_000, 0xa))
    const b = publishPacket("up/b", 2, Buffer.alloc(1_500_000, 0xb))
    first.write(a.subarray(0, 700_000))
    await sleep(200) // lets the first half arrive, so `first` holds its room before `second` asks
    second.write(b) // all of it: it does not fit next to `first`'s, so it waits
    const small = await openRaw(broker.port, "small")
    await small.ping()
    small.write(publishPacket("up/small", 3, Buffer.from("hi")))
    expect(((await small.next("puback")) as IPubackPacket).messageId).toBe(3)
    await sleep(300)
    expect(second.pending("puback")).toHaveLength(0)
    first.write(a.subarray(700_000))
    expect(((await first.next("puback", 5_000)) as IPubackPacket).messageId).toBe(1)
    expect(((await second.next("puback", 5_000)) as IPubackPacket).messageId).toBe(2)
    const topics = (await subscriber.take("publish", 3, 5_000)).map((p) => (p as { topic: string }).topic)
    expect(topics.sort()).toEqual(["up/a", "up/b", "up/small"])
  }, 30_000)
})

describe("the answer to a bad CONNECT", () => {
  it("protocol level 9 gets CONNACK return code 1 and is closed [MQTT-3.1.2-2]", async () => {
    const broker = await e2e.broker()
    const raw = await e2e.raw(broker)
    raw.write(encodeConnect({ clientId: "x", protocolLevel: 9 }))
    expect(((await raw.next("connack")) as IConnackPacket).returnCode).toBe(1)
    expect(await raw.waitClosed()).toBe(true)
  })

  it("a malformed MQTT 5 CONNECT gets CONNACK 0x81 and is closed; a malformed 3.1.1 one is closed without CONNACK", async () => {
    const broker = await e2e.broker()
    const v5 = await RawClient.open(broker.port, 5)
    e2e.defer(() => v5.destroy())
    // properties length 30, beyond the packet
    v5.write(encodePacket(0x10, Buffer.concat([encodeString("MQTT"), Buffer.from([5, 2, 0, 0, 30, 0x11]), encodeString("x")])))
    expect(((await v5.next("connack")) as IConnackPacket).reasonCode).toBe(0x81)
    expect(await v5.waitClosed()).toBe(true)
    const v4 = await e2e.raw(broker)
    v4.write(encodePacket(0x10, Buffer.concat([encodeString("MQTT"), Buffer.from([4, 3, 0, 0]), encodeString("x")])))
    expect(await v4.waitClosed()).toBe(true)
    expect(v4.received).toHaveLength(0)
    expect(broker.logs.some((line) => line.includes("malformed packet"))).toBe(true)
  })

  it("an MQTT 5 CONNECT with a property twice gets CONNACK 0x82 and is closed", async () => {
    const broker = await e2e.broker()
    const v5 = await RawClient.open(broker.port, 5)
    e2e.defer(() => v5.destroy())
    const properties = Buffer.from([10, 0x11, 0, 0, 0, 5, 0x11, 0, 0, 0, 6])
    v5.write(encodePacket(0x10, Buffer.concat([encodeString("MQTT"), Buffer.from([5, 2, 0, 0]), properties, encodeString("x")])))
    expect(((await v5.next("connack")) as IConnackPacket).reasonCode).toBe(0x82)
    expect(await v5.waitClosed()).toBe(true)
  })
})
