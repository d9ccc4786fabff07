import { describe, expect, it } from "@effect/vitest"
import { barrier, settle, uniqueId, useE2E } from "./harness.ts"

const e2e = useE2E()

describe("will messages", () => {
  it("the will is published when the connection drops without DISCONNECT", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    await subscriber.subscribe("will/t", 2)
    const { raw } = await e2e.rawConnect(broker, {
      clientId: uniqueId("will"),
      will: { topic: "will/t", payload: "gone", qos: 1 }
    })
    // Nothing is published while the client is connected.
    await raw.ping()
    expect(subscriber.on("will/t")).toEqual([])

    raw.destroy()
    const will = await subscriber.waitForMessage("will/t", "gone")
    expect(will.qos).toBe(1)
    expect(will.retain).toBe(false)
    await settle()
    expect(subscriber.on("will/t")).toHaveLength(1)
  })

  it("the will is published when an mqtt.js client's stream is destroyed", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    await subscriber.subscribe("will/js", 1)
    const dying = await e2e.client(broker, { will: { topic: "will/js", payload: "js-gone", qos: 1 } })
    dying.mqtt.stream.destroy()
    expect((await subscriber.waitForMessage("will/js", "js-gone")).qos).toBe(1)
  })

  it("the will is not published after a clean DISCONNECT", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    await subscriber.subscribe({ "will/t": 1, "will/barrier": 1 })
    const { raw } = await e2e.rawConnect(broker, {
      clientId: uniqueId("nowill"),
      will: { topic: "will/t", payload: "should-not-appear", qos: 1 }
    })
    raw.send({ cmd: "disconnect" })
    raw.socket.end()
    expect(await raw.waitClosed()).toBe(true)
    await settle()

    const publisher = await e2e.client(broker)
    await barrier(publisher, subscriber, "will/barrier")
    expect(subscriber.on("will/t")).toEqual([])
  })

  it("a will with retain=1 is stored as the retained message of its topic", async () => {
    const broker = await e2e.broker()
    const live = await e2e.client(broker)
    await live.subscribe("will/r", 1)
    const { raw } = await e2e.rawConnect(broker, {
      clientId: uniqueId("wr"),
      will: { topic: "will/r", payload: "last-words", qos: 1, retain: true }
    })
    raw.destroy()
    // Existing subscribers get it as a normal (retain=0) message...
    expect((await live.waitForMessage("will/r", "last-words")).retain).toBe(false)

    // ...and later subscribers get it as the retained message.
    const late = await e2e.client(broker)
    await late.subscribe("will/r", 1)
    const retained = await late.waitForMessage("will/r", "last-words")
    expect(retained.retain).toBe(true)
  })

  it("a will with retain=0 is not stored as a retained message", async () => {
    const broker = await e2e.broker()
    const live = await e2e.client(broker)
    await live.subscribe("will/n", 1)
    const { raw } = await e2e.rawConnect(broker, {
      clientId: uniqueId("wn"),
      will: { topic: "will/n", payload: "not-retained", qos: 1, retain: false }
    })
    raw.destroy()
    await live.waitForMessage("will/n", "not-retained")

    const publisher = await e2e.client(broker)
    await publisher.publish("will/marker", "marker", { qos: 1, retain: true })
    const late = await e2e.client(broker)
    await late.subscribe("will/n", 1)
    await late.subscribe("will/marker", 1)
    await late.waitForMessage("will/marker", "marker")
    await settle()
    expect(late.on("will/n")).toEqual([])
  })
})
