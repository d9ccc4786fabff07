import { describe, expect, it } from "@effect/vitest"
import { generate } from "mqtt-packet"
import type { IPublishPacket, QoS } from "mqtt-packet"
import { useE2E5 } from "./harness5.ts"

const e2e = useE2E5()

const v5Properties = {
  contentType: "text/plain",
  responseTopic: "compat/reply",
  correlationData: Buffer.from("corr"),
  userProperties: { k: "v" },
  payloadFormatIndicator: true,
  messageExpiryInterval: 60
}

describe("MQTT 3.1.1 and MQTT 5 clients together", { timeout: 10_000 }, () => {
  it("a 3.1.1 client and an MQTT 5 client exchange messages both ways at QoS 0, 1 and 2", async () => {
    const broker = await e2e.broker()
    const v4 = await e2e.client4(broker)
    expect(await v4.subscribe("cx/from5/#", 2)).toEqual([2])
    const v5 = await e2e.client(broker)
    expect(await v5.subscribe("cx/from4/#", { qos: 2 })).toEqual([2])

    for (const qos of [0, 1, 2] as const) {
      await v5.publish(`cx/from5/${qos}`, `five-q${qos}`, { qos, properties: { contentType: "text/plain" } })
      await v4.publish(`cx/from4/${qos}`, `four-q${qos}`, { qos })
    }
    const at4 = await v4.waitForMessages(3)
    expect(at4.map((m) => [m.topic, m.payload, m.qos])).toEqual([
      ["cx/from5/0", "five-q0", 0],
      ["cx/from5/1", "five-q1", 1],
      ["cx/from5/2", "five-q2", 2]
    ])
    const at5 = await v5.waitForMessages(3)
    expect(at5.map((m) => [m.topic, m.payload, m.qos])).toEqual([
      ["cx/from4/0", "four-q0", 0],
      ["cx/from4/1", "four-q1", 1],
      ["cx/from4/2", "four-q2", 2]
    ])
    // A message from a 3.1.1 publisher has no publisher properties.
    for (const m of at5) {
      expect(m.properties.contentType).toBeUndefined()
      expect(m.properties.userProperties).toBeUndefined()
    }
  })

  it("retained messages cross protocol versions in both directions", async () => {
    const broker = await e2e.broker()
    const v5Publisher = await e2e.client(broker)
    await v5Publisher.publish("cr/from5", "retained-by-5", { qos: 1, retain: true, properties: { contentType: "text/plain" } })
    const v4Publisher = await e2e.client4(broker)
    await v4Publisher.publish("cr/from4", "retained-by-4", { qos: 1, retain: true })

    const v4 = await e2e.client4(broker)
    expect(await v4.subscribe("cr/from5", 1)).toEqual([1])
    const at4 = await v4.waitForMessage("cr/from5")
    expect([at4.payload, at4.retain, at4.qos]).toEqual(["retained-by-5", true, 1])

    const v5 = await e2e.client(broker)
    expect(await v5.subscribe("cr/from4", { qos: 1 })).toEqual([1])
    const at5 = await v5.waitForMessage("cr/from4")
    expect([at5.payload, at5.retain, at5.qos]).toEqual(["retained-by-4", true, 1])
  })

  it("a 3.1.1 subscriber receives plain 3.1.1 PUBLISH packets, without the MQTT 5 properties", async () => {
    const broker = await e2e.broker()
    const { raw, connack } = await e2e.rawConnect(broker, {}, 4)
    expect(connack.returnCode).toBe(0)
    raw.send({
      cmd: "subscribe",
      messageId: 1,
      subscriptions: [{ topic: "cp/live", qos: 1 }, { topic: "cp/retained", qos: 1 }]
    })
    await raw.next("suback")
    const v5 = await e2e.client(broker)
    await v5.publish("cp/live", "live-payload", { qos: 1, properties: v5Properties })
    await v5.publish("cp/retained", "retained-payload", { qos: 1, retain: true, properties: v5Properties })

    const expectPlain = (bytes: Buffer, packet: IPublishPacket, topic: string, payload: string, qos: QoS, retain: boolean) => {
      expect(packet.topic).toBe(topic)
      expect(packet.payload.toString()).toBe(payload)
      const plain = generate(
        { cmd: "publish", topic, payload: Buffer.from(payload), qos, retain, dup: false, messageId: packet.messageId! },
        { protocolVersion: 4 }
      )
      expect(bytes.toString("hex")).toBe(plain.toString("hex"))
    }
    const live = await raw.nextFrame("publish")
    expectPlain(live.bytes, live.packet as IPublishPacket, "cp/live", "live-payload", 1, false)
    raw.send({ cmd: "puback", messageId: (live.packet as IPublishPacket).messageId! })
    const liveRetained = await raw.nextFrame("publish")
    expectPlain(liveRetained.bytes, liveRetained.packet as IPublishPacket, "cp/retained", "retained-payload", 1, false)
    raw.send({ cmd: "puback", messageId: (liveRetained.packet as IPublishPacket).messageId! })

    // The stored retained message, sent on a new 3.1.1 subscription, is plain as well.
    const { raw: late } = await e2e.rawConnect(broker, {}, 4)
    late.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "cp/retained", qos: 1 }] })
    await late.next("suback")
    const stored = await late.nextFrame("publish")
    expectPlain(stored.bytes, stored.packet as IPublishPacket, "cp/retained", "retained-payload", 1, true)
  })

  it("a 3.1.1 client's CONNACK is the plain 4-byte 3.1.1 packet", async () => {
    const broker = await e2e.broker()
    const raw = await e2e.raw(broker, 4)
    raw.connect({ clean: true })
    const frame = await raw.nextFrame("connack")
    expect(frame.bytes.toString("hex")).toBe("20020000")
  })

  it("a will from an MQTT 5 client reaches a 3.1.1 subscriber without properties", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, {}, 4)
    raw.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "cw/t", qos: 0 }] })
    await raw.next("suback")
    const dying = await e2e.client(broker, {
      will: { topic: "cw/t", payload: "bye", qos: 0, properties: { contentType: "text/plain", userProperties: { a: "b" } } }
    })
    await dying.drop()
    const frame = await raw.nextFrame("publish")
    const plain = generate({ cmd: "publish", topic: "cw/t", payload: Buffer.from("bye"), qos: 0, retain: false, dup: false }, {
      protocolVersion: 4
    })
    expect(frame.bytes.toString("hex")).toBe(plain.toString("hex"))
  })
})
