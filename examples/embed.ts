import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Broker, SessionPlugin } from "effect-mqtt-broker"

const BrokerLive = Broker.layer({ port: 1883 }).pipe(Layer.provide(SessionPlugin.layer))

const program = Effect.gen(function*() {
  const broker = yield* Broker.Broker
  yield* Effect.log(`MQTT broker on port ${broker.address.port}`)
  yield* broker.publish({ topic: "status", payload: Buffer.from("up"), qos: 1, retain: true })
  return yield* Effect.never
})

program.pipe(Effect.provide(BrokerLive), NodeRuntime.runMain)
