/**
 * The same broker over its other listeners: TLS and WebSocket, each carrying a real mqtt.js
 * round trip between a client on that transport and one on plain TCP.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import mqtt from "mqtt"
import { readFileSync } from "node:fs"
import { startTestBroker, type TestBroker } from "../support/TestBroker.ts"

const key = readFileSync(new URL("../fixtures/tls-key.pem", import.meta.url), "utf8")
const cert = readFileSync(new URL("../fixtures/tls-cert.pem", import.meta.url), "utf8")

let broker: TestBroker | undefined
const clients: Array<mqtt.MqttClient> = []
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.endAsync(true)))
  await broker?.stop()
  broker = undefined
})

/** Subscribes with `subscriber`, publishes with `publisher`, returns what arrived. */
const roundTrip = async (subscriber: mqtt.MqttClient, publisher: mqtt.MqttClient, topic: string) => {
  await subscriber.subscribeAsync(topic, { qos: 1 })
  const received = new Promise<string>((resolve) => subscriber.on("message", (_t, payload) => resolve(payload.toString())))
  await publisher.publishAsync(topic, "across transports", { qos: 1 })
  return received
}

const address = (b: TestBroker, transport: string) => {
  const found = b.addresses.find((a) => a.transport === transport)
  expect(found).toBeDefined()
  return found!
}

describe("transports", () => {
  it("a TLS client and a TCP client exchange messages through one broker", async () => {
    broker = await startTestBroker({ tls: { port: 0, host: "127.0.0.1", key, cert } })
    const tls = await mqtt.connectAsync(`mqtts://127.0.0.1:${address(broker, "tls").port}`, { ca: cert, servername: "localhost" })
    const tcp = await mqtt.connectAsync(broker.url)
    clients.push(tls, tcp)
    expect(await roundTrip(tls, tcp, "tls/t")).toBe("across transports")
  })

  it("a WebSocket client (subprotocol mqtt) and a TCP client exchange messages through one broker", async () => {
    broker = await startTestBroker({ webSocket: { port: 0, host: "127.0.0.1" } })
    const ws = await mqtt.connectAsync(`ws://127.0.0.1:${address(broker, "ws").port}`)
    const tcp = await mqtt.connectAsync(broker.url)
    clients.push(ws, tcp)
    expect(await roundTrip(ws, tcp, "ws/t")).toBe("across transports")
    expect(await roundTrip(tcp, ws, "ws/back")).toBe("across transports")
  })
})
