import { describe, expect, it } from "@effect/vitest"
import type { IPublishPacket, ISubackPacket, ISubscription, IUnsubackPacket } from "mqtt-packet"
import { barrier, settle } from "../harness.ts"
import { type RawClient5, subscriptionIds, useE2E5 } from "./harness5.ts"

const e2e = useE2E5()

/** Subscribes over a raw connection and returns the SUBACK. */
async function rawSubscribe(
  raw: RawClient5,
  messageId: number,
  subscriptions: Array<ISubscription>,
  subscriptionIdentifier?: number
): Promise<ISubackPacket> {
  raw.send({
    cmd: "subscribe",
    messageId,
    subscriptions,
    ...(subscriptionIdentifier === undefined ? {} : { properties: { subscriptionIdentifier } })
  })
  const suback = (await raw.next("suback")) as ISubackPacket
  expect(suback.messageId).toBe(messageId)
  return suback
}

/** Retained publishes received so far (not consumed) with a ping round trip first. */
async function retainedDeliveries(raw: RawClient5): Promise<Array<IPublishPacket>> {
  await raw.ping()
  await settle()
  return raw.pending("publish") as Array<IPublishPacket>
}

describe("MQTT 5 subscription identifiers", { timeout: 10_000 }, () => {
  it("a subscription with identifier 7 delivers messages carrying identifier 7", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("sid/+", { qos: 1, subscriptionIdentifier: 7 })).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("sid/a", "one", { qos: 1 })
    const message = await subscriber.waitForMessage("sid/a")
    expect(subscriptionIds(message.properties)).toEqual([7])
  })

  it("a subscription without identifier delivers messages without one", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("nosid/t", { qos: 1 })).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("nosid/t", "one", { qos: 1 })
    expect(subscriptionIds((await subscriber.waitForMessage("nosid/t")).properties)).toEqual([])
  })

  it("overlapping subscriptions with identifiers 1 and 2 deliver one copy carrying both", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("ovl/+", { qos: 1, subscriptionIdentifier: 1 })).toEqual([1])
    expect(await subscriber.subscribe("ovl/#", { qos: 1, subscriptionIdentifier: 2 })).toEqual([1])
    expect(await subscriber.subscribe("ovl-barrier", { qos: 1 })).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("ovl/x", "shared-match", { qos: 1 })
    await barrier(publisher, subscriber, "ovl-barrier")
    const copies = subscriber.on("ovl/x")
    expect(copies).toHaveLength(1)
    expect(subscriptionIds(copies[0]!.properties)).toEqual([1, 2])
  })

  it("re-subscribing with another identifier replaces the identifier", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("resid/t", { qos: 1, subscriptionIdentifier: 3 })).toEqual([1])
    expect(await subscriber.subscribe("resid/t", { qos: 1, subscriptionIdentifier: 4 })).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("resid/t", "x", { qos: 1 })
    await barrier(publisher, subscriber, "resid/t")
    const copies = subscriber.on("resid/t")
    expect(copies).toHaveLength(1)
    expect(subscriptionIds(copies[0]!.properties)).toEqual([4])
  })
})

describe("MQTT 5 subscription options", { timeout: 10_000 }, () => {
  it("No Local: a client subscribed with nl=1 does not receive its own messages; another client does", async () => {
    const broker = await e2e.broker()
    const self = await e2e.client(broker)
    expect(await self.subscribe({ "nl/t": { qos: 1, nl: true }, "nl/own-barrier": { qos: 1 } })).toEqual([1, 1])
    const other = await e2e.client(broker)
    expect(await other.subscribe("nl/t", { qos: 1 })).toEqual([1])

    await self.publish("nl/t", "from-self", { qos: 1 })
    expect((await other.waitForMessage("nl/t", "from-self")).payload).toBe("from-self")
    // Same publisher, later message on a topic without No Local: once it is back, nl/t had its chance.
    await barrier(self, self, "nl/own-barrier")
    expect(self.on("nl/t")).toEqual([])

    // Messages from others still reach the No Local subscription.
    await other.publish("nl/t", "from-other", { qos: 1 })
    expect((await self.waitForMessage("nl/t", "from-other")).payload).toBe("from-other")
  })

  it("Retain As Published: rap=1 keeps RETAIN=1 on a live retained publish, rap=0 clears it", async () => {
    const broker = await e2e.broker()
    const keeps = await e2e.client(broker)
    expect(await keeps.subscribe("rap/t", { qos: 1, rap: true })).toEqual([1])
    const clears = await e2e.client(broker)
    expect(await clears.subscribe("rap/t", { qos: 1, rap: false })).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("rap/t", "retained-live", { qos: 1, retain: true })
    expect((await keeps.waitForMessage("rap/t")).retain).toBe(true)
    expect((await clears.waitForMessage("rap/t")).retain).toBe(false)
    // A non-retained publish is never flagged, whatever rap says.
    await publisher.publish("rap/t", "plain", { qos: 1 })
    expect((await keeps.waitForMessage("rap/t", "plain")).retain).toBe(false)
  })

  it("Retain Handling 0: the retained message is sent on every SUBSCRIBE", async () => {
    const broker = await e2e.broker()
    const publisher = await e2e.client(broker)
    await publisher.publish("rh0/t", "kept", { qos: 1, retain: true })
    const { raw } = await e2e.rawConnect(broker)
    await rawSubscribe(raw, 1, [{ topic: "rh0/t", qos: 1, rh: 0 }])
    const first = (await raw.next("publish")) as IPublishPacket
    expect(first.payload.toString()).toBe("kept")
    expect(first.retain).toBe(true)
    raw.send({ cmd: "puback", messageId: first.messageId! })

    await rawSubscribe(raw, 2, [{ topic: "rh0/t", qos: 1, rh: 0 }])
    const second = (await raw.next("publish")) as IPublishPacket
    expect(second.payload.toString()).toBe("kept")
    expect(second.retain).toBe(true)
  })

  it("Retain Handling 1: the retained message is sent for a new subscription only, not on re-subscribe", async () => {
    const broker = await e2e.broker()
    const publisher = await e2e.client(broker)
    await publisher.publish("rh1/t", "kept", { qos: 1, retain: true })
    const { raw } = await e2e.rawConnect(broker)
    await rawSubscribe(raw, 1, [{ topic: "rh1/t", qos: 1, rh: 1 }])
    const first = (await raw.next("publish")) as IPublishPacket
    expect(first.payload.toString()).toBe("kept")
    expect(first.retain).toBe(true)
    raw.send({ cmd: "puback", messageId: first.messageId! })

    await rawSubscribe(raw, 2, [{ topic: "rh1/t", qos: 1, rh: 1 }])
    expect(await retainedDeliveries(raw)).toEqual([])

    // After UNSUBSCRIBE the next SUBSCRIBE is a new subscription again.
    raw.send({ cmd: "unsubscribe", messageId: 3, unsubscriptions: ["rh1/t"] })
    await raw.next("unsuback")
    await rawSubscribe(raw, 4, [{ topic: "rh1/t", qos: 1, rh: 1 }])
    expect(((await raw.next("publish")) as IPublishPacket).payload.toString()).toBe("kept")
  })

  it("Retain Handling 2: retained messages are never sent at subscribe time, live ones still are", async () => {
    const broker = await e2e.broker()
    const publisher = await e2e.client(broker)
    await publisher.publish("rh2/t", "kept", { qos: 1, retain: true })
    const { raw } = await e2e.rawConnect(broker)
    await rawSubscribe(raw, 1, [{ topic: "rh2/t", qos: 1, rh: 2 }])
    expect(await retainedDeliveries(raw)).toEqual([])
    await rawSubscribe(raw, 2, [{ topic: "rh2/t", qos: 1, rh: 2 }])
    expect(await retainedDeliveries(raw)).toEqual([])

    await publisher.publish("rh2/t", "live", { qos: 1 })
    const live = (await raw.next("publish")) as IPublishPacket
    expect(live.payload.toString()).toBe("live")
    expect(live.retain).toBe(false)
  })

  it("SUBACK has a reason code per filter: granted QoS 0/1/2, and 0x8F for an invalid filter beside granted ones", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker)
    const suback = await rawSubscribe(raw, 1, [
      { topic: "sa/q0", qos: 0 },
      { topic: "sa/q1", qos: 1 },
      { topic: "sa/#/bad", qos: 1 },
      { topic: "sa/q2", qos: 2 }
    ])
    expect(suback.granted).toEqual([0x00, 0x01, 0x8f, 0x02])
    // The granted filters in the same packet work.
    const publisher = await e2e.client(broker)
    await publisher.publish("sa/q2", "ok", { qos: 2 })
    expect(((await raw.next("publish")) as IPublishPacket).payload.toString()).toBe("ok")
    expect(raw.isClosed).toBe(false)
  })

  it("SUBACK grants are capped at the broker's maximumQos", async () => {
    const broker = await e2e.broker({ maximumQos: 1 })
    const { raw } = await e2e.rawConnect(broker)
    const suback = await rawSubscribe(raw, 1, [
      { topic: "cap/0", qos: 0 },
      { topic: "cap/1", qos: 1 },
      { topic: "cap/2", qos: 2 }
    ])
    expect(suback.granted).toEqual([0, 1, 1])
  })

  it("with Request Problem Information 0 a SUBACK failure carries no Reason String or User Properties", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { properties: { requestProblemInformation: false } })
    const suback = await rawSubscribe(raw, 1, [{ topic: "rpi/+x", qos: 1 }])
    expect(suback.granted).toEqual([0x8f])
    expect(suback.properties?.reasonString).toBeUndefined()
    expect(suback.properties?.userProperties).toBeUndefined()
  })

  it("UNSUBACK reason codes: 0x00 for an existing subscription, 0x11 for one that did not exist", async () => {
    const broker = await e2e.broker()
    const client = await e2e.client(broker)
    expect(await client.subscribe("un/a", { qos: 1 })).toEqual([1])
    expect(await client.unsubscribe(["un/a", "un/never"])).toEqual([0x00, 0x11])
    // Unsubscribing again: it no longer exists.
    expect(await client.unsubscribe("un/a")).toEqual([0x11])
  })

  it("raw UNSUBACK carries one reason code per filter", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker)
    await rawSubscribe(raw, 1, [{ topic: "un2/x", qos: 0 }, { topic: "un2/y", qos: 0 }])
    raw.send({ cmd: "unsubscribe", messageId: 2, unsubscriptions: ["un2/y", "un2/z", "un2/x"] })
    const unsuback = (await raw.next("unsuback")) as IUnsubackPacket
    expect(unsuback.messageId).toBe(2)
    expect(unsuback.granted).toEqual([0x00, 0x11, 0x00])
  })
})
