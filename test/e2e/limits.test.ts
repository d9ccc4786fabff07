/**
 * The broker's limits (README "Limits"), each against a real broker on both protocol versions:
 * what the client is answered when it goes past one, and that a client within it is unaffected.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import type { IConnackPacket, Packet } from "mqtt-packet"
import { Effect, Layer } from "effect"
import * as Authenticator from "../../src/auth/Authenticator.ts"
import type { BrokerConfig } from "../../src/config/BrokerConfig.ts"
import { connackCodeAt } from "../support/Connack.ts"
import { startTestBroker, type TestBroker } from "../support/TestBroker.ts"
import { RawClient, uniqueId } from "./harness.ts"

const cleanups: Array<() => void | Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const start = async (config: Partial<BrokerConfig>): Promise<TestBroker> => {
  const broker = await startTestBroker(config)
  cleanups.push(() => broker.stop())
  return broker
}

/** A raw connection that has sent CONNECT (protocol `version`), and the broker's answer: its CONNACK, or none if it closed. */
const connect = async (broker: TestBroker, version: 4 | 5, clientId = uniqueId("limit")) => {
  const raw = await RawClient.open(broker.port, version)
  cleanups.push(() => raw.destroy())
  raw.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: version, clientId, clean: true, keepalive: 30 } as Packet)
  const answer = await Promise.race([raw.next("connack"), raw.closed.then(() => undefined)])
  return { raw, connack: answer as IConnackPacket | undefined }
}

/** The CONNACK's code: 3.1.1 return code or MQTT 5 reason code. */
const code = (connack: IConnackPacket | undefined) => connack?.returnCode ?? connack?.reasonCode

const versions = [4, 5] as const
const name = (version: 4 | 5) => (version === 5 ? "MQTT 5" : "MQTT 3.1.1")

describe("--max-payload-size", () => {
  for (const version of versions) {
    it(`${name(version)}: a larger PUBLISH is not routed, its flow completed (5.0: 0x97); one at the limit goes through`, async () => {
      const broker = await start({ maxPayloadSize: 10 })
      const { raw: subscriber } = await connect(broker, version)
      subscriber.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "big/#", qos: 1 }] } as Packet)
      await subscriber.next("suback")
      const { raw: publisher } = await connect(broker, version)
      publisher.send({ cmd: "publish", topic: "big/a", qos: 1, messageId: 7, payload: Buffer.alloc(11), dup: false, retain: false } as Packet)
      const puback = await publisher.next("puback")
      expect(puback).toMatchObject({ messageId: 7 })
      if (version === 5) expect((puback as { reasonCode?: number }).reasonCode).toBe(0x97)
      publisher.send({ cmd: "publish", topic: "big/b", qos: 2, messageId: 8, payload: Buffer.alloc(11), dup: false, retain: false } as Packet)
      const pubrec = await publisher.next("pubrec")
      if (version === 5) expect((pubrec as { reasonCode?: number }).reasonCode).toBe(0x97)
      publisher.send({ cmd: "publish", topic: "big/c", qos: 0, payload: Buffer.alloc(11), dup: false, retain: false } as Packet)
      publisher.send({ cmd: "publish", topic: "big/d", qos: 1, messageId: 9, payload: Buffer.alloc(10), dup: false, retain: false } as Packet)
      expect((await publisher.next("puback")) as { reasonCode?: number }).toMatchObject({ messageId: 9 })
      const delivered = await subscriber.next("publish")
      expect(delivered).toMatchObject({ topic: "big/d" })
      expect(subscriber.pending("publish")).toEqual([])
      expect(publisher.isClosed).toBe(false)
      expect(broker.logs.filter((line) => line.includes("over --max-payload-size"))).toHaveLength(3)
    })
  }
})

describe("--max-subscriptions-per-client", () => {
  for (const version of versions) {
    it(`${name(version)}: a new filter past the limit is refused alone (${version === 5 ? "0x97" : "0x80"}); a held one re-subscribed, or one after an unsubscribe, is granted`, async () => {
      const broker = await start({ maxSubscriptionsPerClient: 2 })
      const { raw } = await connect(broker, version)
      const subscribe = async (messageId: number, ...topics: Array<string>) => {
        raw.send({ cmd: "subscribe", messageId, subscriptions: topics.map((topic) => ({ topic, qos: 1 })) } as Packet)
        return ((await raw.next("suback")) as { granted: Array<number> }).granted
      }
      const refused = version === 5 ? 0x97 : 0x80
      expect(await subscribe(1, "a", "b")).toEqual([1, 1])
      expect(await subscribe(2, "a", "c", "b")).toEqual([1, refused, 1])
      raw.send({ cmd: "unsubscribe", messageId: 3, unsubscriptions: ["a"] } as Packet)
      await raw.next("unsuback")
      expect(await subscribe(4, "c", "c", "d")).toEqual([1, 1, refused])
      expect(broker.logs.filter((line) => line.includes("over --max-subscriptions-per-client"))).toHaveLength(2)
    })
  }
})

describe("--max-connections", () => {
  for (const version of versions) {
    it(`${name(version)}: a connection past the limit gets CONNACK ${version === 5 ? "0x97" : "3"} and is closed; a takeover is let in, and a freed place is taken`, async () => {
      const broker = await start({ maxConnections: 2 })
      const first = await connect(broker, version, "first")
      const second = await connect(broker, version)
      expect([code(first.connack), code(second.connack)]).toEqual([0, 0])
      const third = await connect(broker, version)
      expect(code(third.connack)).toBe(version === 5 ? 0x97 : 3)
      expect(await third.raw.waitClosed()).toBe(true)
      const takeover = await connect(broker, version, "first")
      expect(code(takeover.connack)).toBe(0)
      expect(await first.raw.waitClosed()).toBe(true)
      second.raw.send({ cmd: "disconnect" } as Packet)
      expect(await second.raw.waitClosed()).toBe(true)
      const fourth = await connect(broker, version)
      expect(code(fourth.connack)).toBe(0)
      expect(broker.logs.filter((line) => line.includes("--max-connections 2 reached"))).toHaveLength(1)
    })
  }
})

describe("--max-connections under simultaneous CONNECTs", () => {
  it("CONNECTs checked at the same time (a slow authenticator) cannot together pass the limit: exactly the limit is let in", async () => {
    // every password check takes 200 ms, so all six CONNECTs are being checked at once
    const slow = Layer.succeed(Authenticator.Authenticator, Authenticator.make((request) => Effect.as(Effect.sleep("200 millis"), { username: request.username })))
    const broker = await startTestBroker({ maxConnections: 3 }, slow)
    cleanups.push(() => broker.stop())
    const answers = await Promise.all(Array.from({ length: 6 }, () => connect(broker, 5)))
    const codes = answers.map((answer) => code(answer.connack)).sort()
    expect(codes).toEqual([0, 0, 0, 0x97, 0x97, 0x97])
    // the refused ones gave their places back: one leaving lets exactly one more in
    const leaving = answers.find((answer) => code(answer.connack) === 0)!.raw
    leaving.send({ cmd: "disconnect" } as Packet)
    expect(await leaving.waitClosed()).toBe(true)
    const again = await Promise.all([connect(broker, 4), connect(broker, 4)])
    expect(again.map((answer) => code(answer.connack)).sort()).toEqual([0, 3])
  })
})

describe("--max-topic-length and --max-topic-levels", () => {
  for (const version of versions) {
    it(`${name(version)}: a filter past either is refused alone (${version === 5 ? "0x8F" : "0x80"}); a PUBLISH past either closes the connection${version === 5 ? " with DISCONNECT 0x90" : ""}`, async () => {
      const broker = await start({ maxTopicLength: 8, maxTopicLevels: 3 })
      const { raw } = await connect(broker, version)
      raw.send({
        cmd: "subscribe",
        messageId: 1,
        subscriptions: ["a/b/c", "a/b/c/d", "12345678", "123456789", "é/éé/é"].map((topic) => ({ topic, qos: 0 }))
      } as Packet)
      const refused = version === 5 ? 0x8f : 0x80
      // "é/éé/é" is 6 characters but 10 bytes
      expect(((await raw.next("suback")) as { granted: Array<number> }).granted).toEqual([0, refused, 0, refused, refused])
      raw.send({ cmd: "publish", topic: "a/b/c", qos: 0, payload: Buffer.from("ok"), dup: false, retain: false } as Packet)
      expect(await raw.next("publish")).toMatchObject({ topic: "a/b/c" })
      for (const topic of ["a/b/c/d", "123456789"]) {
        const { raw: publisher } = await connect(broker, version)
        publisher.send({ cmd: "publish", topic, qos: 1, messageId: 1, payload: Buffer.from("x"), dup: false, retain: false } as Packet)
        if (version === 5) expect(await publisher.next("disconnect")).toMatchObject({ reasonCode: 0x90 })
        expect(await publisher.waitClosed()).toBe(true)
        expect(publisher.pending("puback")).toEqual([])
      }
    })
  }
})

describe("--max-connect-rate", () => {
  for (const version of versions) {
    it(`${name(version)}: past the rate from one address a CONNECT is ${version === 5 ? "answered CONNACK 0x9F" : "closed without CONNACK"}; one warning for the burst`, async () => {
      const broker = await start({ maxConnectsPerSecond: 2 })
      expect(code((await connect(broker, version)).connack)).toBe(0)
      expect(code((await connect(broker, version)).connack)).toBe(0)
      for (let attempt = 0; attempt < 3; attempt++) {
        const refused = await connect(broker, version)
        expect(code(refused.connack)).toBe(version === 5 ? 0x9f : undefined)
        expect(await refused.raw.waitClosed()).toBe(true)
      }
      expect(broker.logs.filter((line) => line.startsWith("WARN") && line.includes("over --max-connect-rate 2"))).toHaveLength(1)
      // the bucket refills at 2 a second
      await new Promise((resolve) => setTimeout(resolve, 600))
      expect(code((await connect(broker, version)).connack)).toBe(0)
    })
  }
})

describe("per-address limits over WebSocket", () => {
  it("--max-connect-rate counts WebSocket connections by their peer address: past it, MQTT 5 gets CONNACK 0x9F", async () => {
    const broker = await start({ maxConnectsPerSecond: 2, webSocket: { port: 0, host: "127.0.0.1" } })
    const ws = broker.addresses.find((address) => address.transport === "ws")!
    const attempt = () => connackCodeAt(`ws://127.0.0.1:${ws.port}`, { protocolVersion: 5 })
    expect([await attempt(), await attempt(), await attempt()]).toEqual([0, 0, 0x9f])
    expect(broker.logs.some((line) => line.includes("CONNECT from 127.0.0.1 refused: over --max-connect-rate 2"))).toBe(true)
  })
})

describe("a will meets the PUBLISH limits at CONNECT", () => {
  for (const version of versions) {
    it(`${name(version)}: a will topic past --max-topic-levels ${version === 5 ? "gets CONNACK 0x90" : "closes the connection"}, a will payload past --max-payload-size gets CONNACK ${version === 5 ? "0x95" : "3"}`, async () => {
      const broker = await start({ maxTopicLevels: 2, maxPayloadSize: 4 })
      const attempt = async (topic: string, payload: string) => {
        const raw = await RawClient.open(broker.port, version)
        cleanups.push(() => raw.destroy())
        raw.send({
          cmd: "connect",
          protocolId: "MQTT",
          protocolVersion: version,
          clientId: uniqueId("will"),
          clean: true,
          keepalive: 30,
          will: { topic, payload: Buffer.from(payload), qos: 0, retain: false }
        } as Packet)
        const connack = await Promise.race([raw.next("connack"), raw.closed.then(() => undefined)])
        expect(await raw.waitClosed()).toBe(true)
        return code(connack as IConnackPacket | undefined)
      }
      expect(await attempt("a/b/c", "x")).toBe(version === 5 ? 0x90 : undefined)
      expect(await attempt("a/b", "12345")).toBe(version === 5 ? 0x95 : 3)
      const { connack } = await connect(broker, version)
      expect(code(connack)).toBe(0)
    })
  }
})
