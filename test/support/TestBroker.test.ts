import { afterEach, describe, expect, it } from "@effect/vitest"
import mqtt from "mqtt"
import { startTestBroker, type TestBroker } from "./TestBroker.ts"

let broker: TestBroker | undefined
afterEach(async () => {
  await broker?.stop()
  broker = undefined
})

describe("TestBroker", () => {
  it("starts a real broker that an mqtt.js client can publish and subscribe through", async () => {
    broker = await startTestBroker()
    const client = await mqtt.connectAsync(broker.url, { clientId: "smoke", protocolVersion: 4 })
    await client.subscribeAsync("smoke/#", { qos: 1 })
    const received = new Promise<string>((resolve) => client.on("message", (topic, payload) => resolve(`${topic}=${payload}`)))
    await client.publishAsync("smoke/1", "hello", { qos: 1 })
    expect(await received).toBe("smoke/1=hello")
    await client.endAsync()
    expect(broker.logs.some((line) => line.includes("plugin loaded: memory-session"))).toBe(true)
  })
})
