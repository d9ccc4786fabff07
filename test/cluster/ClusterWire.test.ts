/**
 * The form of forwarded batches in a node's Redis stream, on a real redis-server: a node reads
 * the binary form and the JSON one (nodes of before write it), writes bytes only to nodes whose
 * heartbeat says they read them, and skips what it cannot read without losing the rest.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import { createClient, RESP_TYPES } from "redis"
import * as BinaryBatch from "../../src/cluster/BinaryBatch.ts"
import { Cluster } from "../../src/cluster/Cluster.ts"
import * as ClusterRedis from "../../src/cluster/ClusterRedis.ts"
import * as Envelope from "../../src/cluster/Envelope.ts"
import type { Forwarded } from "../../src/cluster/Envelope.ts"
import * as StreamEntries from "../../src/cluster/StreamEntries.ts"
import { Router } from "../../src/routing/Router.ts"
import type { Message } from "../../src/session/Message.ts"
import * as RedisServer from "../support/RedisServer.ts"
import { until } from "../support/Until.ts"

const redisUrl = RedisServer.useRedisServer()

const message = (topic: string, payload: string): Message => ({ topic, payload: new TextEncoder().encode(payload), qos: 1, retain: false })
const forwarded = (topic: string, payload: string): Forwarded => ({ message: message(topic, payload), publisherId: "pub", shared: [] })
const text = (f: Forwarded) => new TextDecoder().decode(f.message.payload)

/** A plain node-redis client of the test's own, closed with the scope. */
const rawClient = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = createClient({ url })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.close())
  )

/** Joins as `nodeId` and serves: what peers forward to it is collected. */
const join = (url: string, prefix: string, nodeId: string) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(ClusterRedis.layer({ url, prefix, nodeId, heartbeatMs: 100 }))
    const node = (yield* Context.get(context, Cluster).join(new Router()))!
    const received: Array<Forwarded> = []
    yield* node.serve({
      deliver: (f) => Effect.sync(() => void received.push(f)),
      letGo: () => Effect.void,
      deliverTo: () => Effect.void,
      durable: Effect.void,
      adopt: () => Effect.void
    })
    return { node, received }
  })

/** A node "one" under a fresh key prefix, a plain client to write its stream with, and that stream's key. */
const nodeOne = Effect.gen(function*() {
  const prefix = `w${randomUUID().slice(0, 6)}:`
  const redis = yield* rawClient(redisUrl())
  const one = yield* join(redisUrl(), prefix, "one")
  return { redis, one, stream: `${prefix}cluster:node:one:stream` }
})

describe("cluster wire form", () => {
  it("a node delivers batches in either form, in stream order: JSON (a node of before), binary, and JSON again", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const { redis, one, stream } = yield* nodeOne
      yield* Effect.promise(async () => {
        await redis.sendCommand(["XADD", stream, "*", "b", Envelope.encodeBatch([forwarded("a", "1"), forwarded("a", "2")])])
        await redis.sendCommand(["XADD", stream, "*", "b", BinaryBatch.encode([forwarded("a", "3"), forwarded("a", "4")])!])
        await redis.sendCommand(["XADD", stream, "*", "b", Envelope.encodeBatch([forwarded("a", "5")])])
      })
      yield* until("five messages", () => one.received.length === 5)
      expect(one.received.map(text)).toEqual(["1", "2", "3", "4", "5"])
      expect(one.received.map((f) => f.publisherId)).toEqual(["pub", "pub", "pub", "pub", "pub"])
    }))), 30_000)

  it("a tampered entry of a binary batch is skipped and the rest delivered; an unreadable entry does not hold up the next", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const { redis, one, stream } = yield* nodeOne
      const first = BinaryBatch.encode([forwarded("a", "1")])!
      const tampered = Buffer.from(BinaryBatch.encode([forwarded("a", "1"), forwarded("a", "2"), forwarded("a", "3")])!)
      // the second entry's flags byte: QoS 3
      tampered[first.length + 1] = 0b11
      yield* Effect.promise(async () => {
        await redis.sendCommand(["XADD", stream, "*", "b", tampered])
        await redis.sendCommand(["XADD", stream, "*", "b", Buffer.from([BinaryBatch.MAGIC, 0xff])])
        await redis.sendCommand(["XADD", stream, "*", "b", BinaryBatch.encode([forwarded("a", "4")])!])
      })
      yield* until("three messages", () => one.received.length === 3)
      yield* Effect.sleep(100)
      expect(one.received.map(text)).toEqual(["1", "3", "4"])
      // every entry handled is gone from the stream, the unreadable one too
      let left: unknown
      for (let i = 0; i < 50 && left !== 0; i++) {
        left = yield* Effect.promise(() => redis.sendCommand(["XLEN", stream]))
        if (left !== 0) yield* Effect.sleep(20)
      }
      expect(left).toBe(0)
    }))), 30_000)

  it("a node sends bytes to a peer whose heartbeat says it reads them, JSON to one of before, and JSON to an adopter of before", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const prefix = `w${randomUUID().slice(0, 6)}:`
      const redis = yield* rawClient(redisUrl())
      const node = (id: string) => `${prefix}cluster:node:${id}`
      // three peers that never read their streams: "fresh" reads bytes, "old" only JSON, and
      // "gone" (reads bytes) was adopted by "old", so what is sent to it lands in old's stream
      yield* Effect.promise(async () => {
        for (const [id, reads, filter] of [["fresh", "2", "f/#"], ["old", "1", "o/#"], ["gone", "2", "g/#"]] as const) {
          await redis.sendCommand(["SADD", `${prefix}cluster:nodes`, id])
          await redis.sendCommand(["SET", `${node(id)}:alive`, reads, "PX", "60000"])
          await redis.sendCommand(["SADD", `${node(id)}:filters`, filter])
        }
        await redis.sendCommand(["SET", `${node("gone")}:gone`, "old", "PX", "60000"])
      })
      const sender = yield* join(redisUrl(), prefix, "sender")
      yield* sender.node.forward(message("f/1", "to fresh"), "pub", [])
      yield* sender.node.forward(message("o/1", "to old"), "pub", [])
      yield* sender.node.forward(message("g/1", "to gone"), "pub", [])
      const entries = (id: string) =>
        Effect.promise(() => redis.sendCommand(["XRANGE", `${node(id)}:stream`, "-", "+"], { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } }))
          .pipe(Effect.map(StreamEntries.fromRange))
      const fresh = yield* entries("fresh")
      const old = yield* entries("old")
      expect(fresh).toHaveLength(1)
      const bytes = fresh[0]!.fields.get("b") as Buffer
      expect(BinaryBatch.isBinary(bytes)).toBe(true)
      expect(BinaryBatch.decode(bytes)!.forwarded.map(text)).toEqual(["to fresh"])
      // old's stream: its own batch and the one redirected from gone, both JSON
      expect(old.map((entry) => StreamEntries.text(entry.fields.get("from")))).toEqual([undefined, "gone"])
      for (const entry of old) expect(StreamEntries.text(entry.fields.get("b"))!.startsWith("[")).toBe(true)
      expect(old.map((entry) => Envelope.decodeBatch(StreamEntries.text(entry.fields.get("b"))!)!.forwarded.map(text))).toEqual([["to old"], ["to gone"]])
    }))), 30_000)
})
