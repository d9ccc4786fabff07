import { describe, expect, it } from "@effect/vitest"
import type { TestClient } from "./harness.ts"
import { settle, useE2E } from "./harness.ts"

const e2e = useE2E()

/**
 * Retained messages are sent in response to SUBSCRIBE, so a live barrier does
 * not order them. Instead: subscribe to a topic holding a retained marker in a
 * later SUBSCRIBE and wait for that marker; retained messages for the earlier
 * SUBSCRIBE have been sent by then.
 */
async function retainedBarrier(publisher: TestClient, subscriber: TestClient): Promise<void> {
  await publisher.publish("marker/retained", "marker", { qos: 1, retain: true })
  await subscriber.subscribe("marker/retained", 1)
  await subscriber.waitForMessage("marker/retained", "marker")
  await settle()
}

describe("retained messages", () => {
  it("a retained message is delivered on subscribe with the retain flag set", async () => {
    const broker = await e2e.broker()
    const publisher = await e2e.client(broker)
    await publisher.publish("ret/a", "v1", { qos: 1, retain: true })

    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("ret/a", 1)).toEqual([1])
    const message = await subscriber.waitForMessage("ret/a")
    expect(message).toMatchObject({ payload: "v1", retain: true, qos: 1 })
  })

  it("a newer retained message replaces the previous one", async () => {
    const broker = await e2e.broker()
    const publisher = await e2e.client(broker)
    await publisher.publish("ret/b", "v1", { qos: 1, retain: true })
    await publisher.publish("ret/b", "v2", { qos: 1, retain: true })

    const subscriber = await e2e.client(broker)
    await subscriber.subscribe("ret/b", 1)
    await retainedBarrier(publisher, subscriber)
    expect(subscriber.on("ret/b").map((m) => [m.payload, m.retain])).toEqual([["v2", true]])
  })

  it("a retained message with an empty payload clears the retained message (and is still forwarded live)", async () => {
    const broker = await e2e.broker()
    const existing = await e2e.client(broker)
    await existing.subscribe("ret/c", 1)
    const publisher = await e2e.client(broker)
    await publisher.publish("ret/c", "v1", { qos: 1, retain: true })
    await publisher.publish("ret/c", "", { qos: 1, retain: true })
    await existing.waitForMessages(2)
    expect(existing.on("ret/c").map((m) => [m.payload, m.retain])).toEqual([
      ["v1", false],
      ["", false]
    ])

    const late = await e2e.client(broker)
    await late.subscribe("ret/c", 1)
    await retainedBarrier(publisher, late)
    expect(late.on("ret/c")).toEqual([])
  })

  it("messages forwarded live to existing subscribers have retain=0", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    await subscriber.subscribe("ret/live", 1)
    const publisher = await e2e.client(broker)
    await publisher.publish("ret/live", "live", { qos: 1, retain: true })
    const message = await subscriber.waitForMessage("ret/live", "live")
    expect(message.retain).toBe(false)
  })

  it("retained messages matching a wildcard subscription are delivered on subscribe", async () => {
    const broker = await e2e.broker()
    const publisher = await e2e.client(broker)
    await publisher.publish("rw/a", "A", { qos: 1, retain: true })
    await publisher.publish("rw/b/c", "BC", { qos: 1, retain: true })
    await publisher.publish("other/x", "X", { qos: 1, retain: true })

    const subscriber = await e2e.client(broker)
    await subscriber.subscribe("rw/#", 1)
    await retainedBarrier(publisher, subscriber)
    const received = subscriber.messages
      .filter((m) => m.topic !== "marker/retained")
      .map((m) => [m.topic, m.payload, m.retain] as const)
      .sort()
    expect(received).toEqual([
      ["rw/a", "A", true],
      ["rw/b/c", "BC", true]
    ])
    // Live messages on a wildcard subscription are not flagged retained.
    await publisher.publish("rw/a", "A2", { qos: 1, retain: true })
    expect((await subscriber.waitForMessage("rw/a", "A2")).retain).toBe(false)
  })
})
