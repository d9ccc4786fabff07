import { describe, expect, it } from "@effect/vitest"
import { barrier, sleep } from "../harness.ts"
import { id5, useE2E5 } from "./harness5.ts"

const e2e = useE2E5()

describe("MQTT 5 will messages", { timeout: 15_000 }, () => {
  it("a will without delay is published as soon as the connection drops", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("w0/t", { qos: 1 })).toEqual([1])
    const dying = await e2e.client(broker, { will: { topic: "w0/t", payload: "gone", qos: 1 } })
    const dropped = Date.now()
    await dying.drop()
    await subscriber.waitForMessage("w0/t", "gone", 1_000)
    expect(Date.now() - dropped).toBeLessThan(900)
  })

  it("will properties (Content Type, Response Topic, Correlation Data, User Properties) reach the subscriber", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("wp/t", { qos: 1 })).toEqual([1])
    const dying = await e2e.client(broker, {
      will: {
        topic: "wp/t",
        payload: "{\"state\":\"offline\"}",
        qos: 1,
        properties: {
          contentType: "application/json",
          responseTopic: "wp/reply",
          correlationData: Buffer.from([1, 2, 3]),
          userProperties: { device: "d-1", zone: ["a", "b"] },
          payloadFormatIndicator: true
        }
      }
    })
    await dying.drop()
    const will = await subscriber.waitForMessage("wp/t")
    expect(will.payload).toBe("{\"state\":\"offline\"}")
    expect(will.properties.contentType).toBe("application/json")
    expect(will.properties.responseTopic).toBe("wp/reply")
    expect([...(will.properties.correlationData ?? [])]).toEqual([1, 2, 3])
    expect(will.properties.userProperties).toEqual({ device: "d-1", zone: ["a", "b"] })
    expect(will.properties.payloadFormatIndicator).toBe(true)
  })

  it("Will Delay 1 s with Session Expiry 10: the will is published about 1 s after the drop, not before", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("wd/t", { qos: 1 })).toEqual([1])
    const dying = await e2e.client(broker, {
      clientId: id5("wd"),
      clean: true,
      properties: { sessionExpiryInterval: 10 },
      will: { topic: "wd/t", payload: "delayed", qos: 1, properties: { willDelayInterval: 1 } }
    })
    const dropped = Date.now()
    await dying.drop()
    await sleep(600)
    expect(subscriber.on("wd/t")).toEqual([])
    await subscriber.waitForMessage("wd/t", "delayed", 3_000)
    const elapsed = Date.now() - dropped
    expect(elapsed).toBeGreaterThanOrEqual(900)
    expect(elapsed).toBeLessThan(3_000)
  })

  it("reconnecting within the will delay cancels the will", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe({ "wc/t": { qos: 1 }, "wc/barrier": { qos: 1 } })).toEqual([1, 1])
    const id = id5("wc")
    const dying = await e2e.client(broker, {
      clientId: id,
      clean: true,
      properties: { sessionExpiryInterval: 10 },
      will: { topic: "wc/t", payload: "cancelled", qos: 1, properties: { willDelayInterval: 1 } }
    })
    await dying.drop()
    await sleep(300)
    const back = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 10 } })
    expect(back.connack.sessionPresent).toBe(true)
    // Well past the delay.
    await sleep(1_700)
    await barrier(back, subscriber, "wc/barrier")
    expect(subscriber.on("wc/t")).toEqual([])
  })

  it("Will Delay 5 with Session Expiry 1: the will is published when the session ends (~1 s), not after 5 s", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("we/t", { qos: 1 })).toEqual([1])
    const dying = await e2e.client(broker, {
      clientId: id5("we"),
      clean: true,
      properties: { sessionExpiryInterval: 1 },
      will: { topic: "we/t", payload: "session-ended", qos: 1, properties: { willDelayInterval: 5 } }
    })
    const dropped = Date.now()
    await dying.drop()
    await sleep(500)
    expect(subscriber.on("we/t")).toEqual([])
    await subscriber.waitForMessage("we/t", "session-ended", 3_500)
    const elapsed = Date.now() - dropped
    expect(elapsed).toBeGreaterThanOrEqual(900)
    expect(elapsed).toBeLessThan(4_000)
  })

  it("a will with Will Delay and Session Expiry 0 is published at once (the session ends with the connection)", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("wz/t", { qos: 1 })).toEqual([1])
    const dying = await e2e.client(broker, {
      will: { topic: "wz/t", payload: "now", qos: 1, properties: { willDelayInterval: 5 } }
    })
    const dropped = Date.now()
    await dying.drop()
    await subscriber.waitForMessage("wz/t", "now", 2_000)
    expect(Date.now() - dropped).toBeLessThan(900)
  })
})
