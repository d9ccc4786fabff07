import { describe, expect, it } from "@effect/vitest"
import { generate } from "mqtt-packet"
import type { RunningBroker } from "./harness.ts"
import type { TestBroker } from "../support/TestBroker.ts"
import { barrier, uniqueId, useE2E } from "./harness.ts"

const e2e = useE2E()

/** A fresh pair of clients can still do a QoS 1 round trip through `broker`. */
async function expectBrokerAlive(broker: RunningBroker): Promise<void> {
  const subscriber = await e2e.client(broker)
  await subscriber.subscribe("alive/t", 1)
  const publisher = await e2e.client(broker)
  await publisher.publish("alive/t", "ok", { qos: 1 })
  await subscriber.waitForMessage("alive/t", "ok")
}

/** The broker logged a warning naming why it closed a connection. */
function expectLogged(broker: TestBroker, reason: RegExp): void {
  expect(broker.logs.filter((line) => line.startsWith("WARN") && reason.test(line))).not.toEqual([])
}

describe("bad input", () => {
  it("a malformed packet (reserved type 15) closes only that connection; other clients and a stored session are unaffected", async () => {
    const broker = await e2e.broker()
    // A persistent session with two queued messages.
    const persistentId = uniqueId("keep")
    const persistent = await e2e.client(broker, { clientId: persistentId, clean: false })
    await persistent.subscribe("bad/queue", 1)
    await persistent.disconnect()
    const publisher = await e2e.client(broker)
    await publisher.publish("bad/queue", "q1", { qos: 1 })
    await publisher.publish("bad/queue", "q2", { qos: 1 })
    // A live subscriber.
    const live = await e2e.client(broker)
    await live.subscribe("bad/live", 1)

    const { raw: bad } = await e2e.rawConnect(broker, { clientId: uniqueId("bad") })
    bad.write([0xf0, 0x00])
    expect(await bad.waitClosed()).toBe(true)
    expectLogged(broker, /closing connection: malformed packet/)

    await publisher.publish("bad/live", "still-alive", { qos: 1 })
    await live.waitForMessage("bad/live", "still-alive")
    expect(live.isClosed).toBe(false)
    expect(publisher.isClosed).toBe(false)

    const resumed = await e2e.client(broker, { clientId: persistentId, clean: false })
    expect(resumed.connack.sessionPresent).toBe(true)
    await barrier(publisher, resumed, "bad/queue")
    expect(resumed.payloads("bad/queue")).toEqual(["q1", "q2"])
  })

  it("a PUBLISH whose topic length overruns its remaining length closes the connection", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { clientId: uniqueId("lie") })
    // PUBLISH QoS 0, remaining length 5, but the topic claims 32 bytes.
    raw.write([0x30, 0x05, 0x00, 0x20, 0x61, 0x62, 0x63])
    expect(await raw.waitClosed()).toBe(true)
    await expectBrokerAlive(broker)
  })

  it("a remaining length encoded in more than 4 bytes closes the connection", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { clientId: uniqueId("varint") })
    raw.write([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f])
    expect(await raw.waitClosed()).toBe(true)
    expectLogged(broker, /malformed remaining length/)
    await expectBrokerAlive(broker)
  })

  it("a packet larger than maxPacketSize closes the connection and is not delivered", async () => {
    const broker = await e2e.broker({ maxPacketSize: 1024 })
    const subscriber = await e2e.client(broker)
    await subscriber.subscribe({ "big/t": 0, "big/barrier": 1 })
    const { raw } = await e2e.rawConnect(broker, { clientId: uniqueId("big") })
    raw.send({ cmd: "publish", topic: "big/t", payload: Buffer.alloc(4096, 0x61), qos: 0, dup: false, retain: false })
    expect(await raw.waitClosed()).toBe(true)
    expectLogged(broker, /exceeds the maximum packet size 1024/)

    const publisher = await e2e.client(broker)
    await publisher.publish("big/t", "small", { qos: 0 })
    await barrier(publisher, subscriber, "big/barrier")
    expect(subscriber.payloads("big/t")).toEqual(["small"])
  })

  it("a PUBLISH with a wildcard in its topic name closes the connection and is not delivered", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    await subscriber.subscribe("wild/#", 1)
    for (const topic of ["wild/+/b", "wild/#"]) {
      const { raw } = await e2e.rawConnect(broker, { clientId: uniqueId("wild") })
      raw.send({ cmd: "publish", topic, payload: "bad", qos: 0, dup: false, retain: false })
      expect(await raw.waitClosed(), `PUBLISH to ${topic}`).toBe(true)
    }
    expectLogged(broker, /invalid topic name "wild\/\+\/b"/)
    const publisher = await e2e.client(broker)
    await barrier(publisher, subscriber, "wild/barrier")
    expect(subscriber.messages.filter((m) => m.payload === "bad")).toEqual([])
  })

  it("a first packet other than CONNECT closes the connection", async () => {
    const broker = await e2e.broker()
    const pinger = await e2e.raw(broker)
    pinger.send({ cmd: "pingreq" })
    expect(await pinger.waitClosed()).toBe(true)
    expect(pinger.received).toEqual([])

    const subscriber = await e2e.raw(broker)
    subscriber.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "x", qos: 0 }] })
    expect(await subscriber.waitClosed()).toBe(true)
    expect(subscriber.received).toEqual([])
  })

  it("a SUBSCRIBE whose fixed-header flags are not 0010 closes the connection", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { clientId: uniqueId("flags") })
    const bytes = generate({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "f/t", qos: 0 }] })
    bytes[0] = 0x80 // reserved flags must be 0b0010
    raw.write(bytes)
    expect(await raw.waitClosed()).toBe(true)
    expect(raw.received.filter((p) => p.cmd === "suback")).toEqual([])
  })
})
