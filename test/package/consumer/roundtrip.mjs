// An app's plain JavaScript using the installed package as the README's embed example does
// (Broker.layer + SessionPlugin.layer), but on port 0 and stopping by itself: it publishes a
// retained message through the Broker service, an mqtt.js client receives it and one of its own,
// then the Layer's scope closes. Prints one JSON line; the process must then exit on its own.
import { Effect, Layer } from "effect"
import { Broker, SessionPlugin } from "effect-mqtt-broker"
import mqtt from "mqtt"

const BrokerLive = Broker.layer({ host: "127.0.0.1", port: 0 }).pipe(Layer.provide(SessionPlugin.layer))

/** Subscribes to `status` and `greetings`, publishes to `greetings`, resolves with both messages. */
const roundTrip = (port) =>
  new Promise((resolve, reject) => {
    const client = mqtt.connect({ host: "127.0.0.1", port, protocolVersion: 5, reconnectPeriod: 0 })
    const received = []
    client.on("error", reject)
    client.on("message", (topic, payload) => {
      received.push(`${topic}=${payload}`)
      if (received.length === 2) client.end(false, () => resolve(received))
    })
    client.on("connect", () =>
      client.subscribe(["status", "greetings"], { qos: 1 }, (error) =>
        error ? reject(error) : client.publish("greetings", "hello", { qos: 1 })))
  })

const program = Effect.gen(function*() {
  const broker = yield* Broker.Broker
  yield* broker.publish({ topic: "status", payload: Buffer.from("up"), qos: 1, retain: true })
  const received = yield* Effect.promise(() => roundTrip(broker.address.port))
  process.stdout.write(`${JSON.stringify({ port: broker.address.port, received })}\n`)
})

await Effect.runPromise(program.pipe(Effect.provide(BrokerLive)))
