import { describe, expect, it } from "@effect/vitest"
import { generate } from "mqtt-packet"
import type { IDisconnectPacket, IPubackPacket, IPublishPacket, IPubrecPacket } from "mqtt-packet"
import { sleep } from "../harness.ts"
import { useE2E5 } from "./harness5.ts"

const e2e = useE2E5()

const payloadOf = (packet: IPublishPacket): string => packet.payload.toString()

describe("MQTT 5 flow control", { timeout: 10_000 }, () => {
  it("a subscriber's Receive Maximum 2 bounds unacknowledged QoS 1 deliveries; each PUBACK releases the next in order", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { properties: { receiveMaximum: 2 } })
    raw.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "rm/t", qos: 1 }] })
    expect(((await raw.next("suback")) as { granted: Array<number> }).granted).toEqual([1])

    const publisher = await e2e.client(broker)
    for (const n of [1, 2, 3, 4, 5]) await publisher.publish("rm/t", `m${n}`, { qos: 1 })

    const window = (await raw.take("publish", 2)) as Array<IPublishPacket>
    expect(window.map(payloadOf)).toEqual(["m1", "m2"])
    await sleep(400)
    expect(raw.pending("publish")).toEqual([])

    const ack = (packet: IPublishPacket) => raw.send({ cmd: "puback", messageId: packet.messageId! })
    ack(window[0]!)
    const third = (await raw.next("publish")) as IPublishPacket
    expect(payloadOf(third)).toBe("m3")
    await sleep(300)
    expect(raw.pending("publish")).toEqual([])

    ack(window[1]!)
    const fourth = (await raw.next("publish")) as IPublishPacket
    expect(payloadOf(fourth)).toBe("m4")
    ack(third)
    const fifth = (await raw.next("publish")) as IPublishPacket
    expect(payloadOf(fifth)).toBe("m5")
    ack(fourth)
    ack(fifth)
    await raw.ping()
    expect(raw.pending("publish")).toEqual([])
  })

  it("more unacknowledged inbound QoS 2 PUBLISHes than the broker's Receive Maximum 2 gets DISCONNECT 0x93", async () => {
    const broker = await e2e.broker({ receiveMaximum: 2 })
    const { raw, connack } = await e2e.rawConnect(broker)
    expect(connack.properties?.receiveMaximum).toBe(2)
    for (const messageId of [1, 2]) {
      raw.send({ cmd: "publish", topic: "rq/t", payload: Buffer.from(`q${messageId}`), qos: 2, messageId, dup: false, retain: false })
    }
    const pubrecs = (await raw.take("pubrec", 2)) as Array<IPubrecPacket>
    expect(pubrecs.map((p) => p.messageId)).toEqual([1, 2])
    expect(pubrecs.every((p) => (p.reasonCode ?? 0) < 0x80)).toBe(true)
    // Still within the quota: the connection is fine.
    await raw.ping()

    raw.send({ cmd: "publish", topic: "rq/t", payload: Buffer.from("q3"), qos: 2, messageId: 3, dup: false, retain: false })
    const disconnect = (await raw.next("disconnect")) as IDisconnectPacket
    expect(disconnect.reasonCode).toBe(0x93)
    expect(await raw.waitClosed()).toBe(true)
  })

  it("completing QoS 2 flows (PUBREL) frees the broker's Receive Maximum quota", async () => {
    const broker = await e2e.broker({ receiveMaximum: 2 })
    const { raw } = await e2e.rawConnect(broker)
    for (let messageId = 1; messageId <= 6; messageId++) {
      raw.send({ cmd: "publish", topic: "rq2/t", payload: Buffer.from(`q${messageId}`), qos: 2, messageId, dup: false, retain: false })
      const pubrec = (await raw.next("pubrec")) as IPubrecPacket
      expect(pubrec.messageId).toBe(messageId)
      raw.send({ cmd: "pubrel", messageId })
      await raw.next("pubcomp")
    }
    await raw.ping()
    expect(raw.isClosed).toBe(false)
  })

  it("a subscriber with Maximum Packet Size 200 is not sent a 1000-byte message but still gets small ones after it", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { properties: { maximumPacketSize: 200 } })
    raw.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "mps/t", qos: 1 }] })
    await raw.next("suback")

    const publisher = await e2e.client(broker)
    await publisher.publish("mps/t", "small-before", { qos: 1 })
    await publisher.publish("mps/t", "x".repeat(1000), { qos: 1 })
    await publisher.publish("mps/t", "small-after", { qos: 1 })

    const received: Array<string> = []
    for (;;) {
      const frame = await raw.nextFrame("publish")
      expect(frame.bytes.length).toBeLessThanOrEqual(200)
      const packet = frame.packet as IPublishPacket
      received.push(payloadOf(packet))
      raw.send({ cmd: "puback", messageId: packet.messageId! })
      if (payloadOf(packet) === "small-after") break
    }
    expect(received).toEqual(["small-before", "small-after"])
    await raw.ping()
    expect(raw.isClosed).toBe(false)
  })

  it("an inbound packet larger than maxPacketSize gets DISCONNECT 0x95 and the connection is closed", async () => {
    const broker = await e2e.broker({ maxPacketSize: 200 })
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("big/t", { qos: 1 })).toEqual([1])
    const { raw, connack } = await e2e.rawConnect(broker)
    expect(connack.properties?.maximumPacketSize).toBe(200)
    raw.send({ cmd: "publish", topic: "big/t", payload: Buffer.alloc(500, 0x61), qos: 1, messageId: 1, dup: false, retain: false })
    const disconnect = (await raw.next("disconnect")) as IDisconnectPacket
    expect(disconnect.reasonCode).toBe(0x95)
    expect(await raw.waitClosed()).toBe(true)
    expect(raw.pending("puback")).toEqual([] as Array<IPubackPacket>)
    expect(subscriber.on("big/t")).toEqual([])
  })

  it("a packet of exactly maxPacketSize bytes is accepted, one byte more gets DISCONNECT 0x95", async () => {
    const broker = await e2e.broker({ maxPacketSize: 200 })
    const publish = (payloadLength: number, messageId: number) =>
      generate(
        { cmd: "publish", topic: "fit/t", payload: Buffer.alloc(payloadLength, 0x61), qos: 1, messageId, dup: false, retain: false },
        { protocolVersion: 5 }
      )
    // 1 (type) + 2 (remaining length) + 7 (topic) + 2 (packet id) + 1 (property length) + 187 = 200 bytes
    const exact = publish(187, 1)
    expect(exact.length).toBe(200)
    const over = publish(188, 2)
    expect(over.length).toBe(201)

    const { raw } = await e2e.rawConnect(broker)
    raw.write(exact)
    expect(((await raw.next("puback")) as IPubackPacket).messageId).toBe(1)
    raw.write(over)
    expect(((await raw.next("disconnect")) as IDisconnectPacket).reasonCode).toBe(0x95)
    expect(await raw.waitClosed()).toBe(true)
  })
})
