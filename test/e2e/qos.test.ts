import { describe, expect, it } from "@effect/vitest"
import type { Packet, QoS } from "mqtt-packet"
import { settle, useE2E } from "./harness.ts"

const e2e = useE2E()

describe("QoS", () => {
  it("delivered QoS is min(publish QoS, subscription QoS) for all 9 combinations", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe({ "qos/0": 0, "qos/1": 1, "qos/2": 2 })).toEqual([0, 1, 2])
    const publisher = await e2e.client(broker)
    const levels: ReadonlyArray<QoS> = [0, 1, 2]
    const expected: Record<string, number> = {}
    for (const sub of levels) {
      for (const pub of levels) {
        await publisher.publish(`qos/${sub}`, `pub${pub}`, { qos: pub })
        expected[`sub${sub}/pub${pub}`] = Math.min(sub, pub)
      }
    }
    await subscriber.waitForMessages(9)
    await settle()
    const delivered: Record<string, number> = {}
    for (const m of subscriber.messages) {
      const key = `sub${m.topic.slice("qos/".length)}/${m.payload}`
      expect(delivered[key], `duplicate delivery ${key}`).toBeUndefined()
      delivered[key] = m.qos
    }
    expect(delivered).toEqual(expected)
  })

  it("inbound QoS 2 is exactly-once: a DUP re-send before PUBREL is not delivered again, and the packet id is reusable after PUBCOMP", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("eo/t", 1)).toEqual([1])
    const { raw: publisher } = await e2e.rawConnect(broker, { clientId: "eo-publisher" })
    const publish = (payload: string, dup: boolean): Packet => ({
      cmd: "publish",
      topic: "eo/t",
      payload,
      qos: 2,
      messageId: 1,
      dup,
      retain: false
    })

    publisher.send(publish("first", false))
    expect((await publisher.next("pubrec")).messageId).toBe(1)
    publisher.send(publish("first", true))
    expect((await publisher.next("pubrec")).messageId).toBe(1)
    publisher.send({ cmd: "pubrel", messageId: 1 })
    expect((await publisher.next("pubcomp")).messageId).toBe(1)

    publisher.send(publish("second", false))
    expect((await publisher.next("pubrec")).messageId).toBe(1)
    publisher.send({ cmd: "pubrel", messageId: 1 })
    expect((await publisher.next("pubcomp")).messageId).toBe(1)

    // Same-connection QoS 0 marker: arrives after anything the broker forwarded for the above.
    publisher.send({ cmd: "publish", topic: "eo/t", payload: "marker", qos: 0, dup: false, retain: false })
    await subscriber.waitForMessage("eo/t", "marker")
    await settle()
    expect(subscriber.payloads("eo/t")).toEqual(["first", "second", "marker"])
  })
})
