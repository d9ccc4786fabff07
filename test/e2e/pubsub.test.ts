import { describe, expect, it } from "@effect/vitest"
import type { IPublishPacket, ISubackPacket } from "mqtt-packet"
import { barrier, useE2E } from "./harness.ts"

const e2e = useE2E()

describe("publish / subscribe", () => {
  it("a + filter matches exactly one topic level", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("s/+/temp", 1)).toEqual([1])
    const publisher = await e2e.client(broker)
    const topics = ["s/a/temp", "s/temp", "s/a/b/temp", "s//temp", "s/a/temp/x", "x/a/temp", "s/b/temp"]
    for (const topic of topics) await publisher.publish(topic, topic, { qos: 1 })
    await barrier(publisher, subscriber, "s/barrier/temp")
    const received = subscriber.messages.filter((m) => m.topic !== "s/barrier/temp").map((m) => m.topic)
    expect(received).toEqual(["s/a/temp", "s//temp", "s/b/temp"])
  })

  it("a # filter matches the parent level and every descendant", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("h/#", 1)).toEqual([1])
    const publisher = await e2e.client(broker)
    const topics = ["h", "h/a", "hx", "h/a/b/c", "x/h", "h/"]
    for (const topic of topics) await publisher.publish(topic, topic, { qos: 1 })
    await barrier(publisher, subscriber, "h/barrier")
    const received = subscriber.messages.filter((m) => m.topic !== "h/barrier").map((m) => m.topic)
    expect(received).toEqual(["h", "h/a", "h/a/b/c", "h/"])
  })

  it("an invalid filter in a SUBSCRIBE gets 0x80 while the other filters in the same SUBSCRIBE are granted", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { clientId: "invalid-filter" })
    raw.send({
      cmd: "subscribe",
      messageId: 7,
      subscriptions: [
        { topic: "ok/a", qos: 1 },
        { topic: "a/#/b", qos: 0 },
        { topic: "ok/+", qos: 2 },
        { topic: "a+/b", qos: 1 }
      ]
    })
    const suback = (await raw.next("suback")) as ISubackPacket
    expect(suback.messageId).toBe(7)
    expect(suback.granted).toEqual([1, 0x80, 2, 0x80])

    // The granted filters work and the connection is still usable.
    const publisher = await e2e.client(broker)
    await publisher.publish("ok/zzz", "granted", { qos: 1 })
    const publish = (await raw.next("publish")) as IPublishPacket
    expect(publish.topic).toBe("ok/zzz")
    expect(String(publish.payload)).toBe("granted")
    expect(raw.isClosed).toBe(false)
  })

  it("overlapping subscriptions of one client deliver exactly one copy, at the highest granted QoS", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe({ "ov/#": 0, "ov/+": 1, "ovb/t": 1 })).toEqual([0, 1, 1])
    const publisher = await e2e.client(broker)
    await publisher.publish("ov/p0", "p0", { qos: 0 })
    await publisher.publish("ov/p1", "p1", { qos: 1 })
    await publisher.publish("ov/p2", "p2", { qos: 2 })
    await barrier(publisher, subscriber, "ovb/t")
    const copies = (topic: string) => subscriber.on(topic).map((m) => m.qos)
    expect({ p0: copies("ov/p0"), p1: copies("ov/p1"), p2: copies("ov/p2") }).toEqual({
      p0: [0],
      p1: [1],
      p2: [1]
    })
  })

  it("UNSUBSCRIBE is acknowledged with UNSUBACK and stops delivery", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe({ "un/t": 1, "un/keep": 1 })).toEqual([1, 1])
    const publisher = await e2e.client(broker)
    await publisher.publish("un/t", "before", { qos: 1 })
    await subscriber.waitForMessage("un/t", "before")

    await subscriber.unsubscribe("un/t") // rejects unless an UNSUBACK arrives
    await publisher.publish("un/t", "after", { qos: 1 })
    await barrier(publisher, subscriber, "un/keep")
    expect(subscriber.payloads("un/t")).toEqual(["before"])
  })

  it("200 QoS 1 messages from one publisher arrive in publish order", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("order/t", 1)).toEqual([1])
    const publisher = await e2e.client(broker)
    const expected = Array.from({ length: 200 }, (_, i) => `n${i}`)
    await Promise.all(expected.map((payload) => publisher.publish("order/t", payload, { qos: 1 })))
    const received = await subscriber.waitForMessages(200, { timeoutMs: 5_000 })
    expect(received.map((m) => m.payload)).toEqual(expected)
    expect(received.every((m) => m.qos === 1)).toBe(true)
  }, 10_000)
})
