/**
 * Two cluster nodes in one process (two `ClusterRedis` services, each with its own node-redis
 * client and its own `Router`) on a real redis-server: what one node's router holds reaches the
 * other through Redis alone.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import * as Redis from "effect/persistence/Redis"
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import { randomUUID } from "node:crypto"
import { Cluster, type ClusterNode } from "../../src/cluster/Cluster.ts"
import * as ClusterRedis from "../../src/cluster/ClusterRedis.ts"
import * as Envelope from "../../src/cluster/Envelope.ts"
import type { Forwarded } from "../../src/cluster/Envelope.ts"
import { Router } from "../../src/routing/Router.ts"
import type { Message } from "../../src/session/Message.ts"
import * as SessionCodec from "../../src/session/SessionCodec.ts"
import * as RedisServer from "../support/RedisServer.ts"
import { until } from "../support/Until.ts"

const redisUrl = RedisServer.useRedisServer()

/** A node: its router, its cluster membership, what peers forwarded to it (and for which sessions), what it adopted, and what it does when told to let a client go. */
interface TestNode {
  readonly router: Router
  readonly node: ClusterNode
  readonly received: Array<Forwarded>
  readonly receivedFor: Array<ReadonlySet<string> | undefined>
  readonly adopted: Array<string>
  letGo: (clientId: string) => Effect.Effect<void>
}

const join = (url: string, prefix: string, nodeId: string) =>
  Effect.gen(function*() {
    // built in the test's scope: the node stays joined until the test ends
    const context = yield* Layer.build(ClusterRedis.layer({ url, prefix, nodeId, heartbeatMs: 100 }))
    const cluster = Context.get(context, Cluster)
    const router = new Router()
    const node = (yield* cluster.join(router))!
    const test: TestNode = { router, node, received: [], receivedFor: [], adopted: [], letGo: () => Effect.void }
    yield* node.serve({
      deliver: (forwarded, only) =>
        Effect.sync(() => {
          test.received.push(forwarded)
          test.receivedFor.push(only)
        }),
      letGo: (clientId) => test.letGo(clientId),
      deliverTo: () => Effect.void,
      durable: Effect.void,
      adopt: (clientIds) =>
        Effect.sync(() => {
          test.adopted.push(...clientIds)
          for (const clientId of clientIds) router.subscriptions.add(clientId, "adopted/#", 1)
        })
    })
    return test
  })

const message = (topic: string, payload: string, retain = false): Message => ({ topic, payload: new TextEncoder().encode(payload), qos: 1, retain })

const text = (m: Message | undefined) => (m === undefined ? undefined : new TextDecoder().decode(m.payload))

/** What Redis holds as the cluster's retained messages, by topic. */
const redisRetained = (url: string, prefix: string) =>
  Effect.gen(function*() {
    const redis = yield* Redis.Redis
    const reply = yield* redis.send<Record<string, string>>("HGETALL", `${prefix}cluster:retained`)
    return new Map(Object.entries(reply).map(([topic, stored]) => [topic, text(SessionCodec.decodeMessageSync(stored))]))
  }).pipe(Effect.provide(NodeRedis.layer({ url })))

describe("ClusterRedis", () => {
  it("a filter subscribed on one node attracts the other's messages on matching topics only, and no longer once unsubscribed", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const prefix = `t${randomUUID().slice(0, 6)}:`
      const one = yield* join(redisUrl(), prefix, "one")
      const two = yield* join(redisUrl(), prefix, "two")
      one.router.subscriptions.add("c1", "a/+", 1)
      // a second client on the same filter: still one entry for the node
      one.router.subscriptions.add("c2", "a/+", 0)
      yield* until("the filter on node two", () => {
        Effect.runFork(two.node.forward(message("a/probe", "p"), undefined, []))
        return one.received.length > 0
      })
      const probed = (f: Forwarded) => f.message.topic === "a/probe"
      yield* two.node.forward(message("a/x", "match"), "pub", [])
      yield* two.node.forward(message("b/x", "other"), "pub", [])
      yield* until("the matching message", () => one.received.some((f) => !probed(f)))
      yield* Effect.sleep(100)
      const got = one.received.filter((f) => !probed(f))
      expect(got.map((f) => [f.message.topic, text(f.message), f.publisherId])).toEqual([["a/x", "match", "pub"]])
      one.router.subscriptions.remove("c1", "a/+")
      one.router.subscriptions.remove("c2", "a/+")
      yield* Effect.sleep(200)
      yield* two.node.forward(message("a/x", "after"), "pub", [])
      yield* Effect.sleep(200)
      expect(one.received.filter((f) => !probed(f)).map((f) => text(f.message))).toEqual(["match"])
    }))), 30_000)

  it("after retained writes from both nodes on the same topics, interleaved, both nodes' stores hold what Redis holds", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const prefix = `t${randomUUID().slice(0, 6)}:`
      const one = yield* join(redisUrl(), prefix, "one")
      const two = yield* join(redisUrl(), prefix, "two")
      const topics = ["r/1", "r/2", "r/3"]
      for (let i = 0; i < 60; i++) {
        const writer = i % 2 === 0 ? one : two
        const topic = topics[(i * 7) % topics.length]!
        // every fifth write clears
        writer.router.retain(message(topic, i % 5 === 4 ? "" : `v${i}`, true))
      }
      yield* Effect.sleep(500)
      const stored = yield* redisRetained(redisUrl(), prefix)
      for (const topic of topics) {
        expect(text(one.router.retained.get(topic))).toBe(stored.get(topic))
        expect(text(two.router.retained.get(topic))).toBe(stored.get(topic))
      }
      expect(stored.size).toBeGreaterThan(0)
    }))), 30_000)

  it("a node that joins later reads the retained messages and the filters already there", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const prefix = `t${randomUUID().slice(0, 6)}:`
      const one = yield* join(redisUrl(), prefix, "one")
      one.router.retain(message("late/r", "kept", true))
      one.router.subscriptions.add("c1", "late/#", 1)
      yield* Effect.sleep(200)
      const two = yield* join(redisUrl(), prefix, "two")
      expect(two.node.peersAtStart).toBe(1)
      expect(text(two.router.retained.get("late/r"))).toBe("kept")
      yield* two.node.forward(message("late/x", "y"), undefined, [])
      yield* until("the message on node one", () => one.received.length === 1)
    }))), 30_000)

  it("a node joining under an id that left filters behind (killed) starts with none: they attract nothing", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const prefix = `t${randomUUID().slice(0, 6)}:`
      yield* Effect.gen(function*() {
        const redis = yield* Redis.Redis
        yield* redis.send("SADD", `${prefix}cluster:node:ghost:filters`, "stale/#")
      }).pipe(Effect.provide(NodeRedis.layer({ url: redisUrl() })))
      const ghost = yield* join(redisUrl(), prefix, "ghost")
      const two = yield* join(redisUrl(), prefix, "two")
      yield* two.node.forward(message("stale/x", "y"), undefined, [])
      yield* Effect.sleep(200)
      expect(ghost.received).toEqual([])
    }))), 30_000)

  it("claiming a client id another node owns has that node let it go first (its handler has run when the claim resolves); then only the claimer owns it, and only the owner's release frees it", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const prefix = `t${randomUUID().slice(0, 6)}:`
      const one = yield* join(redisUrl(), prefix, "one")
      const two = yield* join(redisUrl(), prefix, "two")
      const letGo: Array<string> = []
      one.letGo = (clientId) => Effect.andThen(Effect.sleep(100), Effect.sync(() => letGo.push(clientId)))
      two.letGo = (clientId) => Effect.sync(() => letGo.push(`two:${clientId}`))
      // nobody owned it: nobody is asked
      yield* one.node.claim("dev-1")
      expect(letGo).toEqual([])
      expect([yield* one.node.owns("dev-1"), yield* two.node.owns("dev-1")]).toEqual([true, false])
      yield* two.node.claim("dev-1")
      expect(letGo).toEqual(["dev-1"])
      expect([yield* one.node.owns("dev-1"), yield* two.node.owns("dev-1")]).toEqual([false, true])
      // claiming what it owns asks no one
      yield* two.node.claim("dev-1")
      expect(letGo).toEqual(["dev-1"])
      // a release by a node that no longer owns it changes nothing; the owner's frees it
      yield* one.node.release("dev-1")
      expect(yield* one.node.owns("dev-1")).toBe(false)
      yield* two.node.release("dev-1")
      expect(yield* one.node.owns("dev-1")).toBe(true)
    }))), 30_000)
  it("a claim is handled after what was sent to the owner before it: every message forwarded before the claim is delivered before the owner lets the client go", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const prefix = `t${randomUUID().slice(0, 6)}:`
      const one = yield* join(redisUrl(), prefix, "one")
      const two = yield* join(redisUrl(), prefix, "two")
      one.router.subscriptions.add("dev-7", "o/#", 1)
      yield* one.node.claim("dev-7")
      yield* until("the filter on node two", () => {
        Effect.runFork(two.node.forward(message("o/probe", "p"), undefined, []))
        return one.received.length > 0
      })
      const deliveredAtLetGo: Array<number> = []
      one.letGo = () => Effect.sync(() => deliveredAtLetGo.push(one.received.filter((f) => f.message.topic === "o/x").length))
      // not awaited one by one: they and the claim go out back to back
      const sent = Array.from({ length: 50 }, (_, i) => Effect.runPromise(two.node.forward(message("o/x", `m${i}`), "pub", [])))
      yield* two.node.claim("dev-7")
      yield* Effect.promise(() => Promise.all(sent))
      expect(deliveredAtLetGo).toEqual([50])
      expect([yield* one.node.owns("dev-7"), yield* two.node.owns("dev-7")]).toEqual([false, true])
    }))), 30_000)

  it("a node that stops while owning a client is adopted by a live one: the client's session is routed there, and what is sent to the stopped node is delivered there, for that session only", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const prefix = `t${randomUUID().slice(0, 6)}:`
      const scope = yield* Scope.make()
      const one = yield* Scope.provide(scope)(join(redisUrl(), prefix, "one"))
      const two = yield* join(redisUrl(), prefix, "two")
      one.router.subscriptions.add("dev-9", "adopted/#", 1)
      yield* one.node.claim("dev-9")
      yield* until("the filter on node two", () => {
        Effect.runFork(two.node.forward(message("adopted/probe", "p"), undefined, []))
        return one.received.length > 0
      })
      yield* Scope.close(scope, Exit.void)
      // two still routes to one until it has adopted it: these go to one's stream, then to two
      for (let i = 0; i < 5; i++) yield* two.node.forward(message("adopted/x", `m${i}`), "pub", [])
      yield* until("the adoption", () => two.adopted.includes("dev-9") && two.received.filter((f) => f.message.topic === "adopted/x").length === 5)
      const forAdopted = two.receivedFor.filter((_, i) => two.received[i]!.message.topic === "adopted/x")
      expect(forAdopted.every((only) => only !== undefined && Array.from(only).join() === "dev-9")).toBe(true)
      expect(yield* two.node.owns("dev-9")).toBe(true)
      const owner = yield* Effect.gen(function*() {
        const redis = yield* Redis.Redis
        return yield* redis.send<string>("GET", `${prefix}cluster:owner:dev-9`)
      }).pipe(Effect.provide(NodeRedis.layer({ url: redisUrl() })))
      expect(owner).toBe("two")
    }))), 30_000)
  it("the first node of a restarted cluster adopts the nodes of before: what their streams still hold reaches their sessions, and it owns every stored session", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const prefix = `t${randomUUID().slice(0, 6)}:`
      const k = `${prefix}cluster:`
      // a node killed with the whole cluster: a member with no heartbeat, one client, one undelivered batch
      yield* Effect.gen(function*() {
        const redis = yield* Redis.Redis
        yield* redis.send("SADD", `${k}nodes`, "old")
        yield* redis.send("SADD", `${k}node:old:clients`, "dev-3")
        yield* redis.send("SET", `${k}owner:dev-3`, "old")
        const batch = Envelope.encodeBatch([{ message: message("adopted/left", "undelivered"), publisherId: "pub", shared: [] }])
        yield* redis.send("XADD", `${k}node:old:stream`, "*", "b", batch)
      }).pipe(Effect.provide(NodeRedis.layer({ url: redisUrl() })))
      const one = yield* join(redisUrl(), prefix, "one")
      expect(one.node.peersAtStart).toBe(0)
      one.router.subscriptions.add("dev-3", "adopted/#", 1)
      yield* one.node.restored(["dev-3", "dev-4"])
      yield* until("the undelivered message", () => one.received.some((f) => text(f.message) === "undelivered"))
      expect(one.adopted).toEqual(["dev-3"])
      expect(Array.from(one.receivedFor[0]!)).toEqual(["dev-3"])
      expect([yield* one.node.owns("dev-3"), yield* one.node.owns("dev-4")]).toEqual([true, true])
      // its keys go once its stream is delivered
      const left = yield* Effect.gen(function*() {
        const redis = yield* Redis.Redis
        for (let i = 0; i < 100; i++) {
          const count = yield* redis.send<number>("EXISTS", `${k}node:old:stream`, `${k}node:old:clients`, `${k}node:old:gone`)
          if (count === 1) return count
          yield* Effect.sleep(20)
        }
        return -1
      }).pipe(Effect.provide(NodeRedis.layer({ url: redisUrl() })))
      // only the gone marker stays (for ten minutes): late sends to the old node come here
      expect(left).toBe(1)
    }))), 30_000)
})
