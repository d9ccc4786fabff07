import { describe, expect, it } from "@effect/vitest"
import { barrier, useE2E } from "./harness.ts"

const e2e = useE2E()

describe("$ topics", () => {
  it("a # subscriber does not receive $SYS/x or $foo/x", async () => {
    const broker = await e2e.broker()
    const all = await e2e.client(broker)
    expect(await all.subscribe("#", 1)).toEqual([1])
    const dollar = await e2e.client(broker)
    expect(await dollar.subscribe("$foo/#", 1)).toEqual([1])
    // $SYS/x comes from its own client: what happens to a client's $SYS publish
    // (dropped, connection kept or closed) is not what this test is about.
    const sysPublisher = await e2e.client(broker)
    await sysPublisher.publish("$SYS/x", "sys", { qos: 0 })
    const publisher = await e2e.client(broker)
    await publisher.publish("$foo/x", "foo", { qos: 1 })
    // Proves "$foo/x" was routed at all.
    await dollar.waitForMessage("$foo/x", "foo")
    await barrier(publisher, all, "plain/x")
    expect(all.messages.filter((m) => m.topic.startsWith("$"))).toEqual([])
  })

  it("a +/x subscriber does not receive $foo/x", async () => {
    const broker = await e2e.broker()
    const plus = await e2e.client(broker)
    expect(await plus.subscribe("+/x", 1)).toEqual([1])
    const dollar = await e2e.client(broker)
    expect(await dollar.subscribe("$foo/#", 1)).toEqual([1])
    const publisher = await e2e.client(broker)

    await publisher.publish("$foo/x", "foo", { qos: 1 })
    await dollar.waitForMessage("$foo/x", "foo")
    await barrier(publisher, plus, "a/x")
    expect(plus.on("$foo/x")).toEqual([])
  })

  it("a $foo/# subscriber receives $foo topics published by a client", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("$foo/#", 1)).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("$foo/x", "x", { qos: 1 })
    await publisher.publish("$foo/y/z", "yz", { qos: 1 })
    const received = await subscriber.waitForMessages(2)
    expect(received.map((m) => [m.topic, m.payload])).toEqual([
      ["$foo/x", "x"],
      ["$foo/y/z", "yz"]
    ])
  })

  it("a client PUBLISH to $SYS/x is dropped: not delivered to anyone, connection stays open", async () => {
    // Design choice: $SYS is reserved for broker-generated topics, so client
    // publishes there are silently discarded (the connection is kept). This
    // matches Mosquitto, which also silently drops client publishes to $SYS.
    // The test deliberately does not assert whether a QoS 1 PUBLISH to $SYS is
    // acknowledged.
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe({ "$SYS/#": 1, "$SYS/x": 1, "sys/barrier": 1 })).toEqual([1, 1, 1])
    const publisher = await e2e.client(broker)
    await publisher.publish("$SYS/x", "spoof-qos0", { qos: 0 })
    void publisher.publish("$SYS/x", "spoof-qos1", { qos: 1 }).catch(() => {})
    await barrier(publisher, subscriber, "sys/barrier")
    expect(subscriber.messages.filter((m) => m.payload.startsWith("spoof"))).toEqual([])
    expect(publisher.isClosed).toBe(false)
  })
})
