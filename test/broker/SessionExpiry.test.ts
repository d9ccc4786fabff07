/**
 * Session expiry and delayed wills on Effect's clock: the broker runs inside the test with
 * TestClock, real sockets and a real mqtt.js client, and time is moved by hand instead of slept.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import mqtt from "mqtt"
import * as Broker from "../../src/broker/Broker.ts"
import { SessionPlugin } from "../../src/plugin/SessionPlugin.ts"
import { SessionStateProvider } from "../../src/session/SessionStateProvider.ts"

const BrokerTest = Broker.layer({ host: "127.0.0.1", port: 0 }).pipe(Layer.provideMerge(SessionPlugin.layer))

/** Connects an MQTT 5 client, runs `use`, and ends it with a normal DISCONNECT. */
const withClient = <A>(port: number, options: mqtt.IClientOptions, use: (client: mqtt.MqttClient) => Promise<A>) =>
  Effect.promise(async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, reconnectPeriod: 0, ...options })
    try {
      return await use(client)
    } finally {
      await client.endAsync()
    }
  })

/** Lets the broker's fibers run (teardown after a socket closes happens on the event loop). */
const settle = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 150)))

describe("session expiry on Effect's Clock", () => {
  it.effect("a session with Session Expiry Interval 10 is kept for 10 s after disconnect and removed after", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const provider = yield* SessionStateProvider
      yield* withClient(broker.address.port, { clientId: "expiring", clean: false, properties: { sessionExpiryInterval: 10 } }, (client) =>
        client.subscribeAsync("t", { qos: 1 }))
      yield* settle
      yield* TestClock.adjust("9 seconds")
      assert.isTrue(Option.isSome(yield* provider.get("expiring")), "kept within its expiry")
      yield* TestClock.adjust("2 seconds")
      assert.isTrue(Option.isNone(yield* provider.get("expiring")), "removed once expired")
    }).pipe(Effect.provide(BrokerTest)))

  it.effect("a delayed will is published when its delay passes, not before", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const port = broker.address.port
      const received: Array<string> = []
      const watcher = yield* Effect.promise(() => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5 }))
      yield* Effect.promise(() => watcher.subscribeAsync("wills/#", { qos: 1 }))
      watcher.on("message", (topic) => received.push(topic))
      const dying = yield* Effect.promise(() =>
        mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
          protocolVersion: 5,
          clientId: "dying",
          clean: false,
          reconnectPeriod: 0,
          properties: { sessionExpiryInterval: 60 },
          will: { topic: "wills/dying", payload: Buffer.from("gone"), qos: 1, retain: false, properties: { willDelayInterval: 5 } }
        })
      )
      dying.stream.destroy()
      yield* settle
      yield* TestClock.adjust("4 seconds")
      yield* settle
      assert.deepStrictEqual(received, [], "not before the delay")
      yield* TestClock.adjust("2 seconds")
      yield* settle
      assert.deepStrictEqual(received, ["wills/dying"], "published once the delay passed")
      yield* Effect.promise(() => watcher.endAsync())
    }).pipe(Effect.provide(BrokerTest)))
})
