/**
 * Connect timeout and keepalive on Effect's clock: the broker runs inside the test with
 * TestClock and real sockets; time is moved by hand, never slept (only a short real pause lets
 * the event loop carry bytes between the socket and the broker).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import mqttPacket from "mqtt-packet"
import * as Net from "node:net"
import * as Broker from "../../src/broker/Broker.ts"
import { SessionPlugin } from "../../src/plugin/SessionPlugin.ts"

const BrokerTest = Broker.layer({ host: "127.0.0.1", port: 0, connectTimeoutMs: 5_000 }).pipe(Layer.provideMerge(SessionPlugin.layer))

/** A raw TCP client that records the packets it receives and whether the broker closed it. */
const rawClient = (port: number) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ socket: Net.Socket; packets: Array<mqttPacket.Packet>; closed: () => boolean }>((resolve) => {
        const socket = Net.connect(port, "127.0.0.1")
        const packets: Array<mqttPacket.Packet> = []
        let closed = false
        const parser = mqttPacket.parser({ protocolVersion: 5 })
        parser.on("packet", (packet) => packets.push(packet))
        socket.on("data", (bytes) => parser.parse(bytes))
        socket.on("close", () => (closed = true))
        socket.on("error", () => {})
        socket.on("connect", () => resolve({ socket, packets, closed: () => closed }))
      })
    ),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )

/** Lets bytes and the broker's fibers move on the real event loop. */
const settle = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 150)))

const send = (socket: Net.Socket, packet: mqttPacket.Packet) =>
  Effect.sync(() => socket.write(mqttPacket.generate(packet, { protocolVersion: 5 })))

describe("connect timeout and keepalive on Effect's Clock", () => {
  it.effect("a connection that sends no CONNECT is closed once the connect timeout has passed, not before", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const client = yield* rawClient(broker.address.port)
      yield* settle
      yield* TestClock.adjust("4 seconds")
      yield* settle
      assert.isFalse(client.closed(), "open within the connect timeout")
      yield* TestClock.adjust("1500 millis")
      yield* settle
      assert.isTrue(client.closed(), "closed once it passed")
      assert.deepStrictEqual(client.packets, [], "closed without an answer")
    }).pipe(Effect.scoped, Effect.provide(BrokerTest)))

  it.effect("a live MQTT 5 client silent for 1.5 × its keepalive gets DISCONNECT 0x8D and is closed; a PINGREQ before that keeps it", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const client = yield* rawClient(broker.address.port)
      yield* send(client.socket, { cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clientId: "sleepy", clean: true, keepalive: 10 })
      yield* settle
      assert.strictEqual(client.packets[0]?.cmd, "connack")
      yield* TestClock.adjust("14 seconds")
      yield* settle
      assert.isFalse(client.closed(), "open within 1.5 × keepalive")
      yield* send(client.socket, { cmd: "pingreq" })
      yield* settle
      yield* TestClock.adjust("14 seconds")
      yield* settle
      assert.isFalse(client.closed(), "the PINGREQ counted as activity")
      assert.strictEqual(client.packets[1]?.cmd, "pingresp")
      yield* TestClock.adjust("2 seconds")
      yield* settle
      assert.isTrue(client.closed(), "closed 15 s after its last packet")
      const disconnect = client.packets[2] as mqttPacket.IDisconnectPacket | undefined
      assert.strictEqual(disconnect?.cmd, "disconnect")
      assert.strictEqual(disconnect?.reasonCode, 0x8d)
    }).pipe(Effect.scoped, Effect.provide(BrokerTest)))
})
