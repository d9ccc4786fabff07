/**
 * The `Cluster` service on Redis: broker processes sharing one Redis server route to each other.
 *
 * Layout, under `<prefix>cluster:` (prefix default `mqtt:`, as the session provider's):
 * - `nodes`: the set of node ids; `node:<id>:alive`: a key with a TTL (3 heartbeats) the node
 *   refreshes every heartbeat. A node whose key expired is dead: peers forget its filters, so it
 *   no longer attracts traffic, and remove its keys;
 * - `node:<id>:filters`: the set of filters that node's clients subscribe to (one entry however
 *   many clients hold it); `node:<id>` is the channel messages for that node are published on;
 * - `control`: the channel every node hears: filter added / removed, filters reset, node left,
 *   retained message changed;
 * - `retained`: a hash topic → message, the cluster's retained messages.
 *
 * A filter set change and its control event are one Lua script, so they happen in one order
 * for everyone; a peer subscribes to `control` before it reads a set, and applies the events it
 * heard after the read, so its copy converges (set updates replayed over a newer snapshot end
 * in the same state). Retained changes: the same, and a node ignores others' changes to a
 * topic while its own write to it is in flight (Redis orders it after them).
 *
 * Forwarded messages are batched per node until the end of the event loop turn (at most
 * `MAX_BATCH`), one PUBLISH per batch: a node then delivers a batch in one go, and its outboxes
 * write it at once (QoS 0 from A to a subscriber on B: ~14k msg/s one PUBLISH per message, ~50k
 * batched, as fast as within one node on the same machine). Commands go out on one connection in
 * the order they are issued, which keeps messages from one publisher on one topic in order to
 * every node; each node delivers what it receives one message after the other. Pub/sub is at most once: a node away from Redis misses what was sent
 * meanwhile (see README "Cluster").
 */
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import { Effect, Layer, Queue, Semaphore } from "effect"
import * as Redis from "effect/persistence/Redis"
import { randomUUID } from "node:crypto"
import { isSystemTopic } from "../protocol/Topic.ts"
import type { Router } from "../routing/Router.ts"
import type { SharedGroup } from "../routing/SubscriptionIndex.ts"
import type { Message } from "../session/Message.ts"
import * as SessionCodec from "../session/SessionCodec.ts"
import { Cluster, ClusterError, type ClusterNode } from "./Cluster.ts"
import * as Envelope from "./Envelope.ts"
import { NodeFilters } from "./NodeFilters.ts"
import * as Plan from "./Plan.ts"

/** Where the keys live and how often a node says it is alive. */
export interface Options {
  /** Prepended to every key; default `mqtt:`. Nodes of one cluster use the same prefix. */
  readonly prefix?: string | undefined
  /** Milliseconds between heartbeats; a node silent for three is dead. Default 1000. */
  readonly heartbeatMs?: number | undefined
  /** This node's id; default a random one (a restarted process is a new node). */
  readonly nodeId?: string | undefined
}

/** How to reach Redis, and the options. */
export interface LayerOptions extends Options {
  /** A node-redis URL, e.g. `redis://127.0.0.1:6379`. */
  readonly url: string
}

/** Changes a set or hash and announces it on a channel, in one step. KEYS[1]: the set or hash; ARGV: op, field, value, channel, event. */
const CHANGE_AND_ANNOUNCE = `
local op = ARGV[1]
if op == 'sadd' then redis.call('SADD', KEYS[1], ARGV[2])
elseif op == 'srem' then redis.call('SREM', KEYS[1], ARGV[2])
elseif op == 'hset' then redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
elseif op == 'hdel' then redis.call('HDEL', KEYS[1], ARGV[2])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`

/** Writes a node's whole filter set anew and announces it. KEYS[1]: the set; ARGV[1]: channel, ARGV[2]: event, ARGV[3..]: filters. */
const RESET_FILTERS = `
redis.call('DEL', KEYS[1])
for i = 3, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
`

type Client = NodeRedis.NodeRedis["Service"]["client"]

/** Forwarded messages waiting to go to one node, and who waits for them to be with Redis. */
interface Batch {
  readonly entries: Array<Envelope.Forwarded>
  /** Resolves once the PUBLISH is answered (or failed, which is counted). */
  readonly done: Promise<void>
  readonly sent: () => void
}

/** Messages in one batch at most: a large burst goes out in several PUBLISHes rather than one huge one. */
const MAX_BATCH = 512

const makeBatch = (): Batch => {
  let sent: () => void = () => {}
  const done = new Promise<void>((resolve) => (sent = resolve))
  return { entries: [], done, sent: () => sent() }
}

/** Builds the service over a connected node-redis client (`NodeRedis`) and the `Redis` service (for its subscriptions). */
export const make = Effect.fnUntraced(function*(options: Options = {}) {
  const redis = yield* Redis.Redis
  const { client } = yield* NodeRedis.NodeRedis
  const prefix = `${options.prefix ?? "mqtt:"}cluster:`
  const heartbeatMs = Math.max(50, options.heartbeatMs ?? 1000)

  const join = (router: Router) =>
    Effect.gen(function*() {
      const self = options.nodeId ?? randomUUID().slice(0, 8)
      return yield* joinAs(redis, client, { prefix, heartbeatMs, self }, router)
    })
  return Cluster.of({ join })
})

const keys = (prefix: string) => ({
  nodes: `${prefix}nodes`,
  alive: (node: string) => `${prefix}node:${node}:alive`,
  filters: (node: string) => `${prefix}node:${node}:filters`,
  channel: (node: string) => `${prefix}node:${node}`,
  control: `${prefix}control`,
  retained: `${prefix}retained`,
  owner: (clientId: string) => `${prefix}owner:${clientId}`,
  takeovers: (node: string) => `${prefix}node:${node}:takeover`
})

/** Deletes KEYS[1] if it holds ARGV[1]: a node gives up a client id only if it still owns it. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

/** How long a claim waits for the previous owner to end the connection (its teardown flushes for up to 2 s). */
const CLAIM_TIMEOUT_MS = 5_000

/** A hash as HGETALL answers it: node-redis gives an object (RESP3 map), or field/value pairs in a flat array (RESP2). */
const fieldsOf = (reply: unknown): Array<[string, string]> => {
  if (Array.isArray(reply)) {
    const pairs: Array<[string, string]> = []
    for (let i = 0; i + 1 < reply.length; i += 2) pairs.push([String(reply[i]), String(reply[i + 1])])
    return pairs
  }
  if (reply instanceof Map) return Array.from(reply, ([field, value]) => [String(field), String(value)])
  if (typeof reply === "object" && reply !== null) return Object.entries(reply).map(([field, value]) => [field, String(value)])
  return []
}

/** A set as SMEMBERS answers it (an array, or a Set from a RESP3 client). */
const membersOf = (reply: unknown): Array<string> =>
  Array.isArray(reply) || reply instanceof Set ? Array.from(reply as Iterable<unknown>, String) : []

const send = <A>(client: Client, args: ReadonlyArray<string>): Promise<A> => client.sendCommand([...args]) as Promise<A>

const joinAs = Effect.fnUntraced(function*(
  redis: Redis.Redis["Service"],
  client: Client,
  options: { readonly prefix: string; readonly heartbeatMs: number; readonly self: string },
  router: Router
) {
  const { self, heartbeatMs } = options
  const key = keys(options.prefix)
  const ttl = String(heartbeatMs * 3)
  const attempt = <A>(operation: string, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: (cause) => new ClusterError({ operation, cause }) })

  // what peers hold, and which of them have had their set read (the rest only heard of)
  const peers = new NodeFilters()
  const loaded = new Set<string>()
  // the control events and the heartbeat's reads apply one at a time, in order
  const serial = Semaphore.makeUnsafe(1)
  // writes that went out without anyone waiting for them; counted, and logged at the heartbeat
  let failedWrites = 0
  let lastFailure = ""
  const failed = (cause: unknown) => {
    failedWrites++
    lastFailure = cause instanceof Error ? cause.message : String(cause)
  }

  // listen first: what changes after a set is read below is heard
  const control = yield* redis.subscribe(key.control)
  const inbox = yield* redis.subscribe(key.channel(self))
  const takeovers = yield* redis.subscribe(key.takeovers(self))

  /** Reads `node`'s filter set (a snapshot; the control events heard since apply on top). */
  const load = (node: string) =>
    Effect.map(attempt("read filters", () => send<unknown>(client, ["SMEMBERS", key.filters(node)])), (filters) => {
      peers.replace(node, membersOf(filters))
      loaded.add(node)
    })

  const forget = (node: string) => {
    peers.drop(node)
    loaded.delete(node)
  }

  // this node's filters: how many local subscriptions hold each (only the first and last go to Redis)
  const held = new Map<string, number>()
  const announce = (op: string, target: string, field: string, value: string, event: Envelope.Control) =>
    send(client, ["EVAL", CHANGE_AND_ANNOUNCE, "1", target, op, field, value, key.control, Envelope.encodeControl(event)])
  /** Writes this node's whole filter set again (at join, and when Redis has lost it). */
  const resetFilters = () =>
    send(client, [
      "EVAL",
      RESET_FILTERS,
      "1",
      key.filters(self),
      key.control,
      Envelope.encodeControl({ _tag: "FiltersReset", node: self }),
      ...held.keys()
    ])

  // retained writes of this node not yet heard back, per topic: others' changes heard meanwhile are older
  const pendingRetained = new Map<string, number>()
  const settle = (topic: string) => {
    const left = (pendingRetained.get(topic) ?? 1) - 1
    if (left <= 0) pendingRetained.delete(topic)
    else pendingRetained.set(topic, left)
    return left
  }
  const writeRetained = (topic: string, message: Message | undefined) => {
    // each node has its own $SYS tree
    if (isSystemTopic(topic)) return
    pendingRetained.set(topic, (pendingRetained.get(topic) ?? 0) + 1)
    const event = Envelope.encodeControl({ _tag: "Retained", node: self, topic, message })
    const written = message === undefined
      ? send(client, ["EVAL", CHANGE_AND_ANNOUNCE, "1", key.retained, "hdel", topic, "", key.control, event])
      : send(client, ["EVAL", CHANGE_AND_ANNOUNCE, "1", key.retained, "hset", topic, SessionCodec.encodeMessage(message), key.control, event])
    written.catch((cause) => {
      settle(topic)
      failed(cause)
    })
  }

  const onControl = (event: Envelope.Control): Effect.Effect<void, ClusterError> => {
    switch (event._tag) {
      case "FilterAdded":
        if (event.node !== self) peers.add(event.node, event.filter)
        return Effect.void
      case "FilterRemoved":
        if (event.node !== self) peers.remove(event.node, event.filter)
        return Effect.void
      case "FiltersReset":
        return event.node === self ? Effect.void : load(event.node)
      case "NodeLeft":
        if (event.node !== self) forget(event.node)
        return Effect.void
      case "Retained": {
        if (event.node === self) {
          // the last of this node's writes to the topic heard back: Redis holds it, so does the store
          if (settle(event.topic) === 0) router.retained.load(event.topic, event.message)
        } else if (!pendingRetained.has(event.topic)) {
          router.retained.load(event.topic, event.message)
        }
        return Effect.void
      }
    }
  }

  /**
   * Says this node is alive, writes its filters again if Redis lost them, reads the filters of
   * peers it has not read yet, and forgets (and cleans up after) peers whose heartbeat expired.
   */
  const heartbeat = Effect.gen(function*() {
    yield* attempt("heartbeat", () => send(client, ["SET", key.alive(self), "1", "PX", ttl]))
    const added = yield* attempt("heartbeat", () => send<number>(client, ["SADD", key.nodes, self]))
    if (added === 1 && held.size > 0) yield* attempt("write filters", resetFilters)
    const members = membersOf(yield* attempt("read nodes", () => send<unknown>(client, ["SMEMBERS", key.nodes])))
    const others = members.filter((node) => node !== self)
    const alive = yield* attempt("read nodes", () => Promise.all(others.map((node) => send<number>(client, ["EXISTS", key.alive(node)]))))
    const living = new Set<string>()
    for (const [index, node] of others.entries()) {
      if (alive[index] === 1) {
        living.add(node)
        if (!loaded.has(node)) yield* load(node)
      } else {
        forget(node)
        yield* attempt("clean up", () => send(client, ["SREM", key.nodes, node]).then(() => send(client, ["DEL", key.filters(node)])))
        yield* Effect.logInfo(`cluster: node ${node} is gone (no heartbeat); its filters no longer attract messages`)
      }
    }
    // heard of (a control event) but not in the set: it left, or never finished joining
    for (const node of peers.nodes) if (!living.has(node)) forget(node)
    if (failedWrites > 0) {
      yield* Effect.logWarning(`cluster: ${failedWrites} writes to Redis failed since the last heartbeat: ${lastFailure}`)
      failedWrites = 0
    }
    return living.size
  })

  // join: an empty filter set (what a node of the same id left behind attracts nothing), the
  // retained messages, alive, the peers' filters; then this node's own filters follow the router
  const peersAtStart = yield* serial.withPermits(1)(Effect.gen(function*() {
    yield* attempt("write filters", resetFilters)
    const retained = yield* attempt("read retained", () => send<unknown>(client, ["HGETALL", key.retained]))
    for (const [topic, text] of fieldsOf(retained)) {
      try {
        router.retained.load(topic, SessionCodec.decodeMessageSync(text))
      } catch {
        yield* Effect.logWarning(`cluster: retained message of ${topic} is unreadable, ignored`)
      }
    }
    return yield* heartbeat
  }))
  router.subscriptions.observe({
    added: (filter) => {
      const count = (held.get(filter) ?? 0) + 1
      held.set(filter, count)
      if (count === 1) {
        announce("sadd", key.filters(self), filter, "", { _tag: "FilterAdded", node: self, filter }).catch(failed)
      }
    },
    removed: (filter) => {
      const count = (held.get(filter) ?? 0) - 1
      if (count > 0) {
        held.set(filter, count)
        return
      }
      held.delete(filter)
      announce("srem", key.filters(self), filter, "", { _tag: "FilterRemoved", node: self, filter }).catch(failed)
    }
  })
  router.retained.writeThrough({ set: writeRetained, delete: (topic) => writeRetained(topic, undefined) })
  yield* Effect.logInfo(`cluster: node ${self} joined, ${peersAtStart} other node${peersAtStart === 1 ? "" : "s"} alive`)

  // leaving: peers forget this node at once rather than after its heartbeat expires
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      router.subscriptions.observe(undefined)
      yield* Effect.ignore(attempt("leave", () =>
        send(client, ["DEL", key.alive(self), key.filters(self)])
          .then(() => send(client, ["SREM", key.nodes, self]))
          .then(() => send(client, ["PUBLISH", key.control, Envelope.encodeControl({ _tag: "NodeLeft", node: self })]))
      ))
    })
  )

  const logged = <E>(what: string) => (effect: Effect.Effect<void, E>) =>
    Effect.catchCause(effect, (cause) => Effect.logWarning(`cluster: ${what} failed`, cause))
  yield* Effect.forkScoped(Effect.forever(
    Effect.flatMap(Queue.take(control), (received) => {
      const event = Envelope.decodeControl(received.message)
      if (event === undefined) return Effect.logWarning("cluster: an unreadable control event, ignored")
      return serial.withPermits(1)(onControl(event)).pipe(logged("a control event"))
    })
  ))
  yield* Effect.forkScoped(Effect.forever(
    Effect.andThen(Effect.sleep(heartbeatMs), serial.withPermits(1)(heartbeat).pipe(logged("the heartbeat")))
  ))

  // forwarded messages wait for the end of the event loop turn, then go out one PUBLISH per node:
  // fewer commands, and the receiving node delivers a batch in one go (its outboxes write it at once)
  const batches = new Map<string, Batch>()
  let flushing = false
  const publishBatch = (node: string, batch: Batch) =>
    send(client, ["PUBLISH", key.channel(node), Envelope.encodeBatch(batch.entries)]).then(batch.sent, (cause) => {
      failed(cause)
      batch.sent()
    })
  const flush = () => {
    flushing = false
    for (const [node, batch] of batches) publishBatch(node, batch)
    batches.clear()
  }
  const enqueue = (node: string, forwarded: Envelope.Forwarded): Promise<void> => {
    let batch = batches.get(node)
    if (batch === undefined) {
      batch = makeBatch()
      batches.set(node, batch)
    }
    batch.entries.push(forwarded)
    if (batch.entries.length >= MAX_BATCH) {
      // a full batch goes at once; this node's next messages start a new one, after it
      batches.delete(node)
      publishBatch(node, batch)
    } else if (!flushing) {
      flushing = true
      setImmediate(flush)
    }
    return batch.done
  }

  const cursors: Plan.Cursors = new Map()
  const forward = (
    message: Message,
    publisherId: string | undefined,
    localShared: ReadonlyArray<SharedGroup>
  ): Effect.Effect<ReadonlySet<string> | undefined> => {
    if (isSystemTopic(message.topic)) return Effect.succeed(undefined)
    const plan = Plan.plan(peers.route(message.topic), localShared, self, cursors)
    if (plan.sends.size === 0) return Effect.succeed(plan.local)
    if (message.qos === 0) {
      for (const [node, shared] of plan.sends) enqueue(node, { message, publisherId, shared })
      return Effect.succeed(plan.local)
    }
    // QoS 1 and 2: acknowledged to the publisher once Redis has taken every copy
    const sent = Array.from(plan.sends, ([node, shared]) => enqueue(node, { message, publisherId, shared }))
    return Effect.as(Effect.promise(() => Promise.all(sent)), plan.local)
  }

  const listen = (deliver: (forwarded: Envelope.Forwarded) => Effect.Effect<void, unknown>) =>
    Effect.asVoid(Effect.forkScoped(Effect.forever(
      Effect.flatMap(Queue.take(inbox), (received) => {
        const batch = Envelope.decodeBatch(received.message)
        if (batch === undefined) return Effect.logWarning("cluster: an unreadable batch of forwarded messages, ignored")
        const delivered = Effect.forEach(batch.forwarded, (forwarded) => deliver(forwarded).pipe(logged("delivering a forwarded message")), {
          discard: true
        })
        return batch.skipped === 0
          ? delivered
          : Effect.andThen(Effect.logWarning(`cluster: ${batch.skipped} unreadable forwarded messages, ignored`), delivered)
      })
    )))

  // ownership of client ids: `owner:<clientId>` names the node whose connection (or, offline,
  // whose router) has the client; a CONNECT elsewhere claims it and has the old owner let go
  let onClaimed: (clientId: string) => Effect.Effect<void> = () => Effect.void
  const awaitingRelease = new Map<string, () => void>()
  const claim = (clientId: string): Effect.Effect<void> =>
    Effect.gen(function*() {
      const previous = yield* attempt("claim", () => send<string | null>(client, ["SET", key.owner(clientId), self, "GET"]))
      if (previous === null || previous === self) return
      const alive = yield* attempt("claim", () => send<number>(client, ["EXISTS", key.alive(previous)]))
      if (alive !== 1) return
      const request = randomUUID()
      const released = new Promise<void>((resolve) => awaitingRelease.set(request, resolve))
      yield* attempt("claim", () =>
        send(client, ["PUBLISH", key.takeovers(previous), Envelope.encodeTakeover({ _tag: "Claim", clientId, from: self, request })]))
      const answered = yield* Effect.promise(() => released).pipe(Effect.timeoutOption(CLAIM_TIMEOUT_MS))
      awaitingRelease.delete(request)
      if (answered._tag === "None") {
        yield* Effect.logWarning(`cluster: node ${previous} did not let ${clientId} go within ${CLAIM_TIMEOUT_MS} ms; taking it over anyway`)
      }
    }).pipe(
      // without Redis there is no one to ask: the CONNECT goes on as on a single broker
      Effect.catch((error) => Effect.logWarning(`cluster: ${error.message}`))
    )
  const owns = (clientId: string): Effect.Effect<boolean> =>
    attempt("ownership", () => send<string | null>(client, ["GET", key.owner(clientId)])).pipe(
      Effect.map((owner) => owner === null || owner === self),
      Effect.catch(() => Effect.succeed(true))
    )
  const release = (clientId: string): Effect.Effect<void> =>
    Effect.ignore(attempt("release", () => send(client, ["EVAL", RELEASE, "1", key.owner(clientId), self])))
  // each claim is served on its own fiber: a connection slow to end holds up no other takeover
  yield* Effect.forkScoped(Effect.forever(
    Effect.flatMap(Queue.take(takeovers), (received) => {
      const takeover = Envelope.decodeTakeover(received.message)
      if (takeover === undefined) return Effect.logWarning("cluster: an unreadable takeover message, ignored")
      if (takeover._tag === "Released") {
        awaitingRelease.get(takeover.request)?.()
        return Effect.void
      }
      const answer = Envelope.encodeTakeover({ _tag: "Released", request: takeover.request })
      return Effect.asVoid(Effect.forkScoped(
        onClaimed(takeover.clientId).pipe(
          Effect.andThen(attempt("release", () => send(client, ["PUBLISH", key.takeovers(takeover.from), answer]))),
          logged(`handing ${takeover.clientId} over to node ${takeover.from}`)
        )
      ))
    })
  ))

  const node: ClusterNode = {
    nodeId: self,
    peersAtStart,
    forward,
    listen,
    claim,
    owns,
    release,
    onClaimed: (handler) => {
      onClaimed = handler
    }
  }
  return node
})

/** The service over `Redis` and `NodeRedis` provided elsewhere. */
export const layerRedis = (options: Options = {}): Layer.Layer<Cluster, never, Redis.Redis | NodeRedis.NodeRedis> =>
  Layer.effect(Cluster, make(options))

/** The service with its own node-redis client connected to `url`, closed with the Layer; Redis unreachable fails it with a `ClusterError`. */
export const layer = (options: LayerOptions): Layer.Layer<Cluster, ClusterError> =>
  layerRedis(options).pipe(
    Layer.provide(NodeRedis.layer({ url: options.url })),
    Layer.catchTag("RedisError", (cause) => Layer.effect(Cluster, Effect.fail(new ClusterError({ operation: "connect", cause }))))
  )
