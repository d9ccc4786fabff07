import { describe, expect, it } from "@effect/vitest"
import type { IPublishPacket, ISubackPacket, Packet, QoS } from "mqtt-packet"
import { barrier, uniqueId, useE2E } from "./harness.ts"

const e2e = useE2E()

const summary = (packet: Packet) => {
  const publish = packet as IPublishPacket
  return {
    payload: String(publish.payload),
    qos: publish.qos,
    dup: publish.dup,
    messageId: publish.messageId
  }
}

describe("persistent sessions", () => {
  it("CONNACK sessionPresent is 1 when a persistent session is resumed, and its subscriptions deliver without re-subscribing", async () => {
    const broker = await e2e.broker()
    const id = uniqueId("resume")
    const first = await e2e.client(broker, { clientId: id, clean: false })
    expect(first.connack.sessionPresent).toBe(false)
    expect(await first.subscribe("resume/t", 1)).toEqual([1])
    await first.disconnect()

    const resumed = await e2e.client(broker, { clientId: id, clean: false })
    expect(resumed.connack.sessionPresent).toBe(true)
    const publisher = await e2e.client(broker)
    await publisher.publish("resume/t", "after-resume", { qos: 1 })
    const message = await resumed.waitForMessage("resume/t", "after-resume")
    expect(message.qos).toBe(1)
  })

  it("queued QoS 1 and QoS 2 messages are delivered on reconnect in publish order, exactly once each", async () => {
    const broker = await e2e.broker()
    const id = uniqueId("queue")
    const subscriber = await e2e.client(broker, { clientId: id, clean: false })
    expect(await subscriber.subscribe("queue/t", 2)).toEqual([2])
    await subscriber.disconnect()

    const publisher = await e2e.client(broker)
    const sent: Array<{ payload: string; qos: QoS }> = [
      { payload: "m1", qos: 1 },
      { payload: "m2", qos: 2 },
      { payload: "m3", qos: 1 },
      { payload: "m4", qos: 2 },
      { payload: "m5", qos: 2 },
      { payload: "m6", qos: 1 }
    ]
    for (const message of sent) await publisher.publish("queue/t", message.payload, { qos: message.qos })

    const resumed = await e2e.client(broker, { clientId: id, clean: false })
    expect(resumed.connack.sessionPresent).toBe(true)
    await resumed.waitForMessages(sent.length, { filter: (m) => m.topic === "queue/t" })
    // A marker published afterwards on the same topic arrives after the queue
    // is drained; anything beyond the 6 messages before it is a duplicate.
    await barrier(publisher, resumed, "queue/t")
    expect(resumed.on("queue/t").map((m) => ({ payload: m.payload, qos: m.qos }))).toEqual(sent)
  })

  it("unacknowledged in-flight QoS 1 and QoS 2 PUBLISHes are resent on reconnect with DUP=1, same packet ids, in original order", async () => {
    const broker = await e2e.broker()
    const id = uniqueId("inflight")
    const { raw: subscriber, connack } = await e2e.rawConnect(broker, { clientId: id, clean: false })
    expect(connack.sessionPresent).toBe(false)
    subscriber.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "inflight/t", qos: 2 }] })
    expect(((await subscriber.next("suback")) as ISubackPacket).granted).toEqual([2])

    const publisher = await e2e.client(broker)
    const sent: Array<[string, QoS]> = [
      ["a", 1],
      ["b", 2],
      ["c", 1],
      ["d", 2]
    ]
    for (const [payload, qos] of sent) await publisher.publish("inflight/t", payload, { qos })

    // Receive but never acknowledge.
    const original = (await subscriber.take("publish", sent.length)).map(summary)
    expect(original.map(({ payload, qos, dup }) => [payload, qos, dup])).toEqual(sent.map(([p, q]) => [p, q, false]))
    subscriber.destroy()
    await subscriber.closed

    const { raw: resumed, connack: resumedAck } = await e2e.rawConnect(broker, { clientId: id, clean: false })
    expect(resumedAck.sessionPresent).toBe(true)
    const resent = (await resumed.take("publish", sent.length)).map(summary)
    expect(resent).toEqual(original.map((p) => ({ ...p, dup: true })))

    // Complete every flow; afterwards nothing else may be (re)delivered.
    for (const packet of resent) {
      if (packet.qos === 1) resumed.send({ cmd: "puback", messageId: packet.messageId! })
      else resumed.send({ cmd: "pubrec", messageId: packet.messageId! })
    }
    for (const packet of resent.filter((p) => p.qos === 2)) {
      const pubrel = await resumed.next("pubrel")
      expect(pubrel.messageId).toBe(packet.messageId)
      resumed.send({ cmd: "pubcomp", messageId: packet.messageId! })
    }
    await publisher.publish("inflight/t", "after", { qos: 1 })
    const after = summary(await resumed.next("publish"))
    expect(after.payload).toBe("after")
    expect(after.dup).toBe(false)
  })

  it("a QoS 2 delivery that was PUBREC'd but not PUBCOMP'd gets its PUBREL resent on reconnect, not the PUBLISH", async () => {
    const broker = await e2e.broker()
    const id = uniqueId("pubrel")
    const { raw: subscriber } = await e2e.rawConnect(broker, { clientId: id, clean: false })
    subscriber.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "pubrel/t", qos: 2 }] })
    expect(((await subscriber.next("suback")) as ISubackPacket).granted).toEqual([2])

    const publisher = await e2e.client(broker)
    await publisher.publish("pubrel/t", "x", { qos: 2 })
    const publish = summary(await subscriber.next("publish"))
    expect(publish).toMatchObject({ payload: "x", qos: 2 })
    subscriber.send({ cmd: "pubrec", messageId: publish.messageId! })
    expect((await subscriber.next("pubrel")).messageId).toBe(publish.messageId)
    // No PUBCOMP: drop the connection.
    subscriber.destroy()
    await subscriber.closed

    const { raw: resumed, connack } = await e2e.rawConnect(broker, { clientId: id, clean: false })
    expect(connack.sessionPresent).toBe(true)
    expect((await resumed.next("pubrel")).messageId).toBe(publish.messageId)
    resumed.send({ cmd: "pubcomp", messageId: publish.messageId! })
    // A later message proves the broker processed the PUBCOMP and is delivering normally.
    await publisher.publish("pubrel/t", "y", { qos: 1 })
    const next = summary(await resumed.next("publish"))
    expect(next.payload).toBe("y")
    expect(resumed.received.filter((p) => p.cmd === "publish").map((p) => summary(p).payload)).toEqual(["y"])
  })

  it("the offline queue is bounded by maxQueuedMessages: the newest messages are kept, the oldest dropped", async () => {
    const broker = await e2e.broker({ maxQueuedMessages: 5 })
    const id = uniqueId("bounded")
    const subscriber = await e2e.client(broker, { clientId: id, clean: false })
    expect(await subscriber.subscribe("bounded/t", 1)).toEqual([1])
    await subscriber.disconnect()

    const publisher = await e2e.client(broker)
    for (let i = 0; i < 8; i++) await publisher.publish("bounded/t", `m${i}`, { qos: 1 })

    const resumed = await e2e.client(broker, { clientId: id, clean: false })
    expect(resumed.connack.sessionPresent).toBe(true)
    await barrier(publisher, resumed, "bounded/t")
    expect(resumed.payloads("bounded/t")).toEqual(["m3", "m4", "m5", "m6", "m7"])
  })

  it("QoS 0 messages are not queued for an offline persistent session", async () => {
    const broker = await e2e.broker()
    const id = uniqueId("q0")
    const subscriber = await e2e.client(broker, { clientId: id, clean: false })
    expect(await subscriber.subscribe("offline/t", 1)).toEqual([1])
    await subscriber.disconnect()

    const publisher = await e2e.client(broker)
    await publisher.publish("offline/t", "qos0", { qos: 0 })
    await publisher.publish("offline/t", "qos1", { qos: 1 })

    const resumed = await e2e.client(broker, { clientId: id, clean: false })
    await barrier(publisher, resumed, "offline/t")
    expect(resumed.payloads("offline/t")).toEqual(["qos1"])
  })

  it("DISCONNECT of a clean=1 client removes its session", async () => {
    const broker = await e2e.broker()
    const id = uniqueId("gone")
    const transient = await e2e.client(broker, { clientId: id, clean: true })
    expect(await transient.subscribe("gone/t", 1)).toEqual([1])
    await transient.disconnect()

    const again = await e2e.client(broker, { clientId: id, clean: false })
    expect(again.connack.sessionPresent).toBe(false)
    expect(await again.subscribe("gone/barrier", 1)).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("gone/t", "nobody", { qos: 1 })
    await barrier(publisher, again, "gone/barrier")
    expect(again.payloads("gone/t")).toEqual([])
  })

  it("a second connection with the same client id takes over: the first is closed and the session carries on", async () => {
    const broker = await e2e.broker()
    const id = uniqueId("takeover")
    const first = await e2e.client(broker, { clientId: id, clean: false })
    expect(await first.subscribe("takeover/t", 1)).toEqual([1])

    const second = await e2e.client(broker, { clientId: id, clean: false })
    expect(await first.waitClosed()).toBe(true)
    expect(second.connack.sessionPresent).toBe(true)

    const publisher = await e2e.client(broker)
    await publisher.publish("takeover/t", "to-second", { qos: 1 })
    expect((await second.waitForMessage("takeover/t", "to-second")).qos).toBe(1)
    expect(second.isClosed).toBe(false)
    expect(first.payloads("takeover/t")).toEqual([])
  })
})
