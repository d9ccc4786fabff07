/**
 * The `Cluster` service on Redis: broker processes sharing one Redis server route to each other.
 *
 * Layout, under `<prefix>cluster:` (prefix default `mqtt:`, as the session provider's):
 * - `nodes`: the set of node ids; `node:<id>:alive`: a key with a TTL (3 heartbeats) the node
 *   refreshes every heartbeat;
 * - `node:<id>:filters`: the set of filters that node's clients subscribe to (one entry however
 *   many clients hold it);
 * - `node:<id>:stream`: a stream of what is sent to that node, in order: batches of forwarded
 *   messages and claims of its clients. The node deletes an entry once it has handled it (its
 *   sessions hold the messages), so what a node that dies had not handled stays there;
 * - `owner:<clientId>`: the node a client's connection, or its offline session's subscriptions,
 *   live on; `node:<id>:clients`: the client ids a node owns;
 * - `node:<id>:gone`: the node that adopted a dead one (for ten minutes): what is still sent to
 *   the dead one goes to the adopter's stream, marked as sent to the dead one;
 * - `control`: the channel every node hears: filter added / removed, filters reset, node left or
 *   adopted, retained message changed; `node:<id>:takeover`: answers to a node's claims;
 * - `retained`: a hash topic → message, the cluster's retained messages.
 *
 * A filter set change and its control event are one Lua script, so they happen in one order
 * for everyone; a peer subscribes to `control` before it reads a set, and applies the events it
 * heard after the read, so its copy converges. Retained changes: the same, and a node ignores
 * others' changes to a topic while its own write to it is in flight (Redis orders it after them).
 *
 * Forwarded messages are batched per node until the end of the event loop turn (at most
 * `MAX_BATCH`; longer while the node's earlier batches are unanswered), one stream entry per batch,
 * in `BinaryBatch`'s form to nodes whose heartbeat key says they read it (`READS_BINARY`), else as
 * JSON; commands go out on one connection in the order they are
 * issued, which keeps messages from one publisher on one topic in order to every node, and each
 * node handles its stream in order. A QoS 1 or 2 message is acknowledged to its publisher once
 * every copy is in a stream.
 *
 * A node that dies (its heartbeat key expired twice in a row as seen by a peer) or stops is
 * **adopted** by one live node (a lock with `SET NX`): the adopter takes over its clients'
 * ownership, routes their stored sessions itself, marks the dead node gone (later sends to it are
 * redirected to the adopter), delivers what the dead node's stream still holds to the adopted
 * sessions, then deletes its keys and announces `Adopted`. Until then peers keep sending to the
 * dead node's stream: a message acknowledged to its publisher is never lost with a node. A client
 * may get a message twice around a node's death (QoS 1 is at least once).
 */
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import { Effect, Layer, Queue, Semaphore } from "effect"
import * as Redis from "effect/persistence/Redis"
import { randomUUID } from "node:crypto"
import { RESP_TYPES } from "redis"
import { isSystemTopic } from "../protocol/Topic.ts"
import type { Router } from "../routing/Router.ts"
import type { SharedGroup } from "../routing/SubscriptionIndex.ts"
import type { Message } from "../session/Message.ts"
import * as SessionCodec from "../session/SessionCodec.ts"
import { Cluster, ClusterError, type ClusterNode, type Host } from "./Cluster.ts"
import * as BinaryBatch from "./BinaryBatch.ts"
import * as Envelope from "./Envelope.ts"
import { ForwardingAddresses } from "./ForwardingAddresses.ts"
import { NodeFilters } from "./NodeFilters.ts"
import * as Plan from "./Plan.ts"
import * as Scripts from "./Scripts.ts"
import * as StreamEntries from "./StreamEntries.ts"

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



type Client = NodeRedis.NodeRedis["Service"]["client"]

/** Forwarded messages waiting to go to one node, and who waits for them to be with Redis. */
interface Batch {
  readonly entries: Array<Envelope.Forwarded>
  /** Payload bytes in `entries`. */
  bytes: number
  /** Resolves once the stream entry is written (or failed, which is counted). */
  readonly done: Promise<void>
  readonly sent: () => void
}

/** Batches to one node Redis may not have answered yet before QoS 0 messages for it are shed. */
const MAX_BATCHES_IN_FLIGHT = 32

/**
 * Batches to one node in flight past which the next one waits for an answer, growing meanwhile:
 * a sender that is behind (its event loop, or Redis) writes fewer, larger entries.
 */
const COALESCE_IN_FLIGHT = 2

/** Entries in a node's stream (not yet handled by it) past which QoS 0 messages for it are shed: it is behind. */
const MAX_BACKLOG_ENTRIES = 256

/** Messages in one batch at most: a large burst goes out in several stream entries rather than one huge one. */
const MAX_BATCH = 512

/** Payload bytes in one batch past which it goes at once (large messages: one entry is not megabytes long). */
const MAX_BATCH_BYTES = 1 << 20

/**
 * The value of a node's heartbeat key: the forms of a batch it reads. "2": the binary form
 * (`BinaryBatch`) and the JSON one; anything else (nodes of before: "1"): the JSON one only.
 */
const READS_BINARY = "2"

/** Replies with bulk strings as `Buffer`s: stream entries whose batches are bytes. */
const AS_BYTES = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } as const

/** `forward`'s answer when no peer gets the message and no shared subscription matched here. */
const NOTHING_SHARED: Effect.Effect<ReadonlySet<string>> = Effect.succeed(new Set<string>())

const makeBatch = (): Batch => {
  let sent: () => void = () => {}
  const done = new Promise<void>((resolve) => (sent = resolve))
  return { entries: [], bytes: 0, done, sent: () => sent() }
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
  /** What key names of a node start with, for the scripts that pick the node. */
  nodePrefix: `${prefix}node:`,
  alive: (node: string) => `${prefix}node:${node}:alive`,
  filters: (node: string) => `${prefix}node:${node}:filters`,
  stream: (node: string) => `${prefix}node:${node}:stream`,
  clients: (node: string) => `${prefix}node:${node}:clients`,
  gone: (node: string) => `${prefix}node:${node}:gone`,
  adopter: (node: string) => `${prefix}node:${node}:adopter`,
  control: `${prefix}control`,
  retained: `${prefix}retained`,
  owner: (clientId: string) => `${prefix}owner:${clientId}`,
  takeovers: (node: string) => `${prefix}node:${node}:takeover`
})

/** How long a claim waits for a live owner to answer (its connection's teardown flushes for up to 2 s). */
const CLAIM_TIMEOUT_MS = 5_000
/** How long an adopter holds its lock on a dead node: another node adopts it after, if the adopter died meanwhile. */
const ADOPTION_LOCK_MS = 60_000
/** How long sends to an adopted node are still redirected to its adopter: longer than any peer needs to hear of it. */
const GONE_MS = 600_000
/** How long a node sends on what it gets for a client it handed over, at most (the claimant says when it is done sooner). */
const FORWARDING_MS = 10_000
/** How long a read of the stream waits for entries before it reads again. */
const READ_BLOCK_MS = 1_000
/** Stream entries handled in one go (each a batch of up to `MAX_BATCH` messages, or a claim). */
const READ_COUNT = 64

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

const send = <A>(client: Client, args: ReadonlyArray<string | Buffer>): Promise<A> => client.sendCommand([...args]) as Promise<A>

/** A command whose reply's bulk strings come as `Buffer`s (a stream read: batches may be bytes). */
const sendForBytes = (client: Client, args: ReadonlyArray<string>): Promise<unknown> => client.sendCommand([...args], AS_BYTES)

/**
 * Another connection to the same server: for blocking reads of the node's stream (a blocked
 * connection can send nothing else), and for the heartbeat (never queued behind a flood of
 * forwarded messages: a node that is alive says so in time).
 */
const connectAnother = (client: Client) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const reader = client.duplicate()
        // reconnects are node-redis' own; failed reads are counted by the read loop
        reader.on("error", () => {})
        await reader.connect()
        return reader
      },
      catch: (cause) => new ClusterError({ operation: "connect", cause })
    }),
    (reader) =>
      Effect.sync(() => {
        if (reader.isOpen) reader.destroy()
      })
  )

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
  // peers whose heartbeat says they read the binary form of a batch
  const readsBinary = new Set<string>()
  // the control events and the heartbeat's reads apply one at a time, in order
  const serial = Semaphore.makeUnsafe(1)
  // writes that went out without anyone waiting for them; counted, and logged at the heartbeat
  let failedWrites = 0
  let lastFailure = ""
  // QoS 0 messages for other nodes dropped while Redis was behind (see `unanswered`); logged likewise
  let shed = 0
  const failed = (cause: unknown) => {
    failedWrites++
    lastFailure = cause instanceof Error ? cause.message : String(cause)
  }

  // listen first: what changes after a set is read below is heard
  const control = yield* redis.subscribe(key.control)
  const takeovers = yield* redis.subscribe(key.takeovers(self))
  const reader = yield* connectAnother(client)
  const beat = yield* connectAnother(client)

  /** Reads `node`'s filter set (a snapshot; the control events heard since apply on top). */
  const load = (node: string) =>
    Effect.map(attempt("read filters", () => send<unknown>(client, ["SMEMBERS", key.filters(node)])), (filters) => {
      peers.replace(node, membersOf(filters))
      loaded.add(node)
    })

  const forget = (node: string) => {
    peers.drop(node)
    loaded.delete(node)
    readsBinary.delete(node)
  }

  // this node's filters: how many local subscriptions hold each (only the first and last go to Redis)
  const held = new Map<string, number>()
  const announce = (op: string, target: string, field: string, value: string, event: Envelope.Control) =>
    send(client, ["EVAL", Scripts.CHANGE_AND_ANNOUNCE, "1", target, op, field, value, key.control, Envelope.encodeControl(event)])
  /** Writes this node's whole filter set again (at join, and when Redis has lost it). */
  const resetFilters = () =>
    send(client, [
      "EVAL",
      Scripts.RESET_FILTERS,
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
      ? send(client, ["EVAL", Scripts.CHANGE_AND_ANNOUNCE, "1", key.retained, "hdel", topic, "", key.control, event])
      : send(client, ["EVAL", Scripts.CHANGE_AND_ANNOUNCE, "1", key.retained, "hset", topic, SessionCodec.encodeMessage(message), key.control, event])
    written.catch((cause) => {
      settle(topic)
      failed(cause)
    })
  }

  // what the broker does for the cluster, once it serves (until then nothing is adopted)
  let host: Host | undefined
  // adopting a dead node runs on its own fiber, once per node at a time
  const adopting = new Set<string>()
  // a dead node seen once without its heartbeat: adopted only if it is still silent at the next
  // heartbeat (after Redis was away, every node's heartbeat key may have expired meanwhile)
  const suspects = new Set<string>()
  let adoptIfFree: (node: string) => Effect.Effect<void> = () => Effect.void
  const adoptInBackground = (node: string) =>
    Effect.suspend(() => {
      if (host === undefined || adopting.has(node)) return Effect.void
      adopting.add(node)
      return Effect.asVoid(Effect.forkDetach(Effect.ensuring(adoptIfFree(node), Effect.sync(() => adopting.delete(node)))))
    })

  const onControl = (event: Envelope.Control): Effect.Effect<void, ClusterError> => {
    switch (event._tag) {
      case "FilterAdded":
        if (event.node !== self) peers.add(event.node, event.filter)
        if (!addresses.isEmpty) addresses.recheck(event.node, peers.filtersOf(event.node))
        return Effect.void
      case "FilterRemoved":
        if (event.node !== self) peers.remove(event.node, event.filter)
        return Effect.void
      case "FiltersReset":
        return event.node === self ? Effect.void : Effect.andThen(load(event.node), Effect.sync(() => addresses.recheck(event.node, peers.filtersOf(event.node))))
      case "NodeLeft":
        // its stream and sessions wait for an adopter; peers keep sending to it until then
        return event.node === self ? Effect.void : adoptInBackground(event.node)
      case "Adopted":
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
   * peers it has not read yet, and has the peers whose heartbeat expired adopted.
   */
  const heartbeat = Effect.gen(function*() {
    yield* attempt("heartbeat", () => send(beat, ["SET", key.alive(self), READS_BINARY, "PX", ttl]))
    const added = yield* attempt("heartbeat", () => send<number>(beat, ["SADD", key.nodes, self]))
    if (added === 1 && held.size > 0) yield* attempt("write filters", resetFilters)
    const members = membersOf(yield* attempt("read nodes", () => send<unknown>(beat, ["SMEMBERS", key.nodes])))
    const others = members.filter((node) => node !== self)
    const alive = yield* attempt("read nodes", () => Promise.all(others.map((node) => send<string | null>(beat, ["GET", key.alive(node)]))))
    let living = 0
    for (const [index, node] of others.entries()) {
      if (alive[index] !== null) {
        // what it reads: a node of before gets the JSON form
        if (alive[index] === READS_BINARY) readsBinary.add(node)
        else readsBinary.delete(node)
        living++
        suspects.delete(node)
        if (!loaded.has(node)) yield* load(node)
      } else {
        // a dead node's filters still attract messages: into its stream, for its adopter
        if (!loaded.has(node)) yield* load(node)
        if (suspects.has(node)) yield* adoptInBackground(node)
        else suspects.add(node)
      }
    }
    // heard of (a control event) but not a member: it was adopted, or never finished joining
    const known = new Set(members)
    for (const node of peers.nodes) if (!known.has(node)) forget(node)
    if (shed > 0) {
      yield* Effect.logWarning(
        `cluster: ${shed} QoS 0 messages for other nodes dropped since the last heartbeat: Redis was ${MAX_BATCHES_IN_FLIGHT} batches behind, or the node ${MAX_BACKLOG_ENTRIES} stream entries`
      )
      shed = 0
    }
    if (failedWrites > 0) {
      yield* Effect.logWarning(`cluster: ${failedWrites} writes to Redis failed since the last heartbeat: ${lastFailure}`)
      failedWrites = 0
    }
    return living
  })

  // join: no gone marker for this id (sends to it go to it), an empty filter set (what a node of
  // the same id left behind attracts nothing), the retained messages, alive, the peers' filters;
  // then this node's own filters follow the router
  const peersAtStart = yield* serial.withPermits(1)(Effect.gen(function*() {
    yield* attempt("join", () => send(client, ["DEL", key.gone(self), key.adopter(self)]))
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
  /** One more holder of `filter` here: the first one announces it. */
  const hold = (filter: string) => {
    const count = (held.get(filter) ?? 0) + 1
    held.set(filter, count)
    if (count === 1) {
      announce("sadd", key.filters(self), filter, "", { _tag: "FilterAdded", node: self, filter }).catch(failed)
    }
  }
  /** One holder of `filter` less: the last one announces it gone. */
  const unhold = (filter: string) => {
    const count = (held.get(filter) ?? 0) - 1
    if (count > 0) {
      held.set(filter, count)
      return
    }
    held.delete(filter)
    announce("srem", key.filters(self), filter, "", { _tag: "FilterRemoved", node: self, filter }).catch(failed)
  }
  router.subscriptions.observe({ added: hold, removed: unhold })
  router.retained.writeThrough({ set: writeRetained, delete: (topic) => writeRetained(topic, undefined) })
  yield* Effect.logInfo(`cluster: node ${self} joined, ${peersAtStart} other node${peersAtStart === 1 ? "" : "s"} alive`)

  // leaving: with no client left (no offline session routed here), its keys go and peers forget it
  // at once; with some, it is no longer alive and a peer adopts it at once (its sessions, and what
  // is still sent here) rather than after its heartbeat key expired
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      router.subscriptions.observe(undefined)
      yield* Effect.ignore(attempt("leave", async () => {
        if ((await send<number>(client, ["SCARD", key.clients(self)])) > 0) {
          await send(client, ["DEL", key.alive(self)])
          return send(client, ["PUBLISH", key.control, Envelope.encodeControl({ _tag: "NodeLeft", node: self })])
        }
        await send(client, ["DEL", key.alive(self), key.filters(self), key.stream(self)])
        await send(client, ["SREM", key.nodes, self])
        return send(client, ["PUBLISH", key.control, Envelope.encodeControl({ _tag: "Adopted", node: self, by: self })])
      }))
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

  // forwarded messages wait for the end of the event loop turn, then go out one stream entry per
  // node: fewer commands, and the receiving node delivers a batch in one go (its outboxes write it at once)
  const batches = new Map<string, Batch>()
  let flushing = false
  // batches sent to each node that Redis has not answered yet: past a bound, QoS 0 is shed (as a
  // congested subscriber's), so the connection's queue and the heartbeat behind it stay short
  const unanswered = new Map<string, number>()
  // each node's stream length as of the last entry written to it: what it has not handled yet
  const backlog = new Map<string, number>()

  /**
   * Appends an entry to `node`'s stream (its adopter's, once it is gone); the reply says whose
   * stream took it and how long that is now. A binary batch (`bytes`) for an adopter that reads
   * only JSON is not written: the reply says so, and the caller sends the JSON form.
   */
  const append = (node: string, field: string, value: string | Buffer, bytes: boolean) =>
    send<[string, string, number]>(client, [
      "EVAL",
      Scripts.SEND,
      "2",
      key.stream(node),
      key.gone(node),
      key.nodePrefix,
      node,
      field,
      value,
      bytes ? "1" : "0",
      READS_BINARY
    ])

  /** Appends an entry to `node`'s stream after what waits to go there (claims and notices keep their place behind messages). */
  const sendTo = (node: string, field: string, value: string) => {
    const waiting = batches.get(node)
    if (waiting !== undefined) {
      batches.delete(node)
      sendBatch(node, waiting)
    }
    return append(node, field, value, false)
  }

  const sendBatch = (node: string, batch: Batch) => {
    unanswered.set(node, (unanswered.get(node) ?? 0) + 1)
    const answered = (length: number | undefined) => {
      unanswered.set(node, (unanswered.get(node) ?? 1) - 1)
      if (length !== undefined) backlog.set(node, length)
      batch.sent()
      // a batch held back while this one was in flight goes now
      if (batches.has(node) && !flushing) {
        flushing = true
        setImmediate(flush)
      }
    }
    const bytes = readsBinary.has(node) ? BinaryBatch.encode(batch.entries) : undefined
    return append(node, "b", bytes ?? Envelope.encodeBatch(batch.entries), bytes !== undefined)
      .then((reply) => reply[0] === "text" ? append(node, "b", Envelope.encodeBatch(batch.entries), false) : reply)
      .then((reply) => answered(Number(reply[2])), (cause) => {
        failed(cause)
        answered(undefined)
      })
  }
  const flush = () => {
    flushing = false
    for (const [node, batch] of batches) {
      // behind: the batch waits for an answer and grows meanwhile (fewer, larger entries)
      if ((unanswered.get(node) ?? 0) >= COALESCE_IN_FLIGHT) continue
      batches.delete(node)
      sendBatch(node, batch)
    }
  }
  const enqueue = (node: string, forwarded: Envelope.Forwarded): Promise<void> => {
    let batch = batches.get(node)
    if (batch === undefined) {
      batch = makeBatch()
      batches.set(node, batch)
    }
    batch.entries.push(forwarded)
    batch.bytes += forwarded.message.payload.length
    if (batch.entries.length >= MAX_BATCH || batch.bytes >= MAX_BATCH_BYTES) {
      // a full batch goes at once; this node's next messages start a new one, after it
      batches.delete(node)
      sendBatch(node, batch)
    } else if (!flushing) {
      flushing = true
      setImmediate(flush)
    }
    return batch.done
  }
  /**
   * Whether a QoS 0 message for `node` is dropped: Redis is far behind, or the node is (its
   * stream long). A node behind still gets one batch per answer, which also says when it caught up.
   */
  const shedding = (node: string): boolean => {
    const inFlight = unanswered.get(node) ?? 0
    return inFlight >= MAX_BATCHES_IN_FLIGHT || (inFlight > 0 && (backlog.get(node) ?? 0) >= MAX_BACKLOG_ENTRIES)
  }

  const cursors: Plan.Cursors = new Map()
  const forward = (
    message: Message,
    publisherId: string | undefined,
    localShared: ReadonlyArray<SharedGroup>
  ): Effect.Effect<ReadonlySet<string> | undefined> => {
    if (isSystemTopic(message.topic)) return Effect.succeed(undefined)
    const route = peers.route(message.topic)
    // most messages of a node with no peer wanting them: nothing to plan, nothing to send
    if (route.clients.size === 0 && route.shared.length === 0 && localShared.length === 0 && addresses.isEmpty) return NOTHING_SHARED
    const plan = Plan.plan(route, localShared, self, cursors)
    const onward = addresses.isEmpty ? undefined : sendOn(message, publisherId)
    if (onward !== undefined && message.qos > 0) {
      return Effect.andThen(Effect.promise(() => onward), sendPlanned(plan, message, publisherId))
    }
    return sendPlanned(plan, message, publisherId)
  }
  const sendPlanned = (
    plan: Plan.Plan,
    message: Message,
    publisherId: string | undefined
  ): Effect.Effect<ReadonlySet<string> | undefined> => {
    if (plan.sends.size === 0) return Effect.succeed(plan.local)
    if (message.qos === 0) {
      for (const [node, shared] of plan.sends) {
        if (shedding(node)) shed++
        else enqueue(node, { message, publisherId, shared })
      }
      return Effect.succeed(plan.local)
    }
    // QoS 1 and 2: acknowledged to the publisher once Redis has taken every copy
    const sent = Array.from(plan.sends, ([node, shared]) => enqueue(node, { message, publisherId, shared }))
    return Effect.as(Effect.promise(() => Promise.all(sent)), plan.local)
  }

  // the sessions adopted from each gone node: what was sent to it goes to them only
  const adoptedFrom = new Map<string, Set<string>>()

  // claims this node made, waiting for an answer, by request id
  const awaitingRelease = new Map<string, () => void>()
  // clients this node took from a live node, until their subscriptions are in its router
  const claimedFrom = new Map<string, string>()

  // clients handed to another node that does not route them yet: what still reaches this node for
  // them is sent on; their filters stay announced (held once more) meanwhile, so peers keep
  // sending here what they must get
  const addresses = new ForwardingAddresses({ hold, unhold })
  /** Sends on what matches a moving client's subscriptions; resolves once Redis has it. */
  const sendOn = (message: Message, publisherId: string | undefined): Promise<unknown> | undefined => {
    const onward = addresses.route(message, publisherId)
    if (onward.length === 0) return undefined
    return Promise.all(onward.map(({ clientId, message, node }) =>
      sendTo(node, "t", Envelope.encodeTargeted({ clientId, message })).catch(failed)
    ))
  }

  /**
   * A claim found in a stream (this node's, or a gone node's it adopted): the messages before it
   * are delivered; the client's connection here ends, its subscriptions go, then it is handed to
   * the claimant, who is told. Its own claims (drained from a node it adopted) need nothing.
   */
  const onClaim = (claim: Extract<Envelope.Takeover, { _tag: "Claim" }>, serving: Host) => {
    if (claim.from === self) {
      awaitingRelease.get(claim.request)?.()
      return Effect.void
    }
    const answer = Envelope.encodeTakeover({ _tag: "Released", request: claim.request, clientId: claim.clientId, node: self })
    // on its own fiber: a connection slow to end holds up no other message
    return Effect.asVoid(Effect.forkDetach(
      serving.letGo(claim.clientId, (subscriptions) => addresses.start(claim.clientId, claim.from, subscriptions)).pipe(
        Effect.andThen(() => {
          for (const adopted of adoptedFrom.values()) adopted.delete(claim.clientId)
          if (!addresses.has(claim.clientId)) return Effect.void
          // the claimant says when it routes the client itself; if it never does (it died), not forever
          return Effect.asVoid(Effect.forkDetach(Effect.andThen(Effect.sleep(FORWARDING_MS), Effect.sync(() => addresses.stop(claim.clientId, claim.from)))))
        }),
        Effect.andThen(attempt("hand over", () =>
          send(client, ["EVAL", Scripts.TRANSFER, "1", key.owner(claim.clientId), key.nodePrefix, claim.clientId, self, claim.from])
            .then(() => send(client, ["PUBLISH", key.takeovers(claim.from), answer])))),
        logged(`handing ${claim.clientId} over to node ${claim.from}`)
      )
    ))
  }

  /** Handles stream entries in order; `only` says which sessions a batch is for (all: `undefined`). */
  const handle = (
    serving: Host,
    entries: ReadonlyArray<StreamEntries.StreamEntry>,
    only: (from: string | undefined) => ReadonlySet<string> | undefined
  ) =>
    Effect.forEach(entries, (entry) => {
      const batchValue = entry.fields.get("b")
      if (batchValue !== undefined) {
        const batch = Envelope.decodeBatchEntry(batchValue)
        if (batch === undefined) return Effect.logWarning("cluster: an unreadable batch of forwarded messages, ignored")
        const sessions = only(StreamEntries.text(entry.fields.get("from")))
        const delivered = Effect.forEach(batch.forwarded, (forwarded) => {
          const delivering = serving.deliver(forwarded, sessions).pipe(logged("delivering a forwarded message"))
          if (addresses.isEmpty) return delivering
          const onward = sendOn(forwarded.message, forwarded.publisherId)
          return onward === undefined ? delivering : Effect.andThen(delivering, Effect.promise(() => onward))
        }, { discard: true })
        return batch.skipped === 0
          ? delivered
          : Effect.andThen(Effect.logWarning(`cluster: ${batch.skipped} unreadable forwarded messages, ignored`), delivered)
      }
      const targetedText = StreamEntries.text(entry.fields.get("t"))
      if (targetedText !== undefined) {
        const targeted = Envelope.decodeTargeted(targetedText)
        if (targeted === undefined) return Effect.logWarning("cluster: an unreadable message for a moved client, ignored")
        return serving.deliverTo(targeted.clientId, targeted.message).pipe(logged("delivering a message for a moved client"))
      }
      const settledText = StreamEntries.text(entry.fields.get("s"))
      if (settledText !== undefined) {
        const settled = Envelope.decodeSettled(settledText)
        if (settled !== undefined) addresses.settled(settled.clientId, settled.node, peers.filtersOf(settled.node))
        return Effect.void
      }
      const claimText = StreamEntries.text(entry.fields.get("c"))
      const claim = claimText === undefined ? undefined : Envelope.decodeTakeover(claimText)
      if (claim?._tag === "Claim") return onClaim(claim, serving)
      return Effect.logWarning("cluster: an unreadable stream entry, ignored")
    }, { discard: true })

  /** Entries redirected from a gone node are for the sessions adopted from it (all when that is unknown: twice rather than never). */
  const onlyAdopted = (from: string | undefined): ReadonlySet<string> | undefined =>
    from === undefined ? undefined : adoptedFrom.get(from)

  /** Delivers what the gone node `dead`'s stream still holds to the sessions adopted from it, then removes its keys. */
  const drain = (serving: Host, dead: string, sessions: number) =>
    Effect.gen(function*() {
      let delivered = 0
      for (;;) {
        const entries = StreamEntries.fromRange(
          yield* attempt("adopt", () => sendForBytes(client, ["XRANGE", key.stream(dead), "-", "+", "COUNT", String(READ_COUNT)]))
        )
        if (entries.length === 0) break
        yield* handle(serving, entries, () => adoptedFrom.get(dead))
        yield* serving.durable
        delivered += entries.length
        yield* attempt("adopt", () => send(client, ["XDEL", key.stream(dead), ...entries.map((entry) => entry.id)]))
      }
      yield* attempt("adopt", () =>
        send(client, ["DEL", key.stream(dead), key.clients(dead), key.filters(dead), key.alive(dead), key.adopter(dead)])
          .then(() => send(client, ["SREM", key.nodes, dead]))
          .then(() => send(client, ["PUBLISH", key.control, Envelope.encodeControl({ _tag: "Adopted", node: dead, by: self })])))
      yield* serial.withPermits(1)(Effect.sync(() => forget(dead)))
      // sends to it are redirected here for as long as its gone marker lives
      yield* Effect.forkDetach(Effect.andThen(Effect.sleep(GONE_MS), Effect.sync(() => adoptedFrom.delete(dead))))
      yield* Effect.logInfo(
        `cluster: adopted node ${dead}: ${sessions} session${sessions === 1 ? "" : "s"}, ${delivered} undelivered entr${delivered === 1 ? "y" : "ies"} of its stream`
      )
    })

  /**
   * Adopts the dead node `dead`: its clients become this node's, their stored sessions routed
   * here, and sends to it are redirected here; then, on a fiber of its own (a claim waiting for
   * the adoption need not wait for it), what its stream still holds is delivered to them — to a
   * client already back here, live — its keys go and peers forget it.
   */
  const adopt = (serving: Host, dead: string) =>
    Effect.gen(function*() {
      const clients = membersOf(yield* attempt("adopt", () => send<unknown>(client, ["SMEMBERS", key.clients(dead)])))
      const moved = yield* attempt("adopt", () =>
        Promise.all(clients.map((clientId) =>
          send<number>(client, ["EVAL", Scripts.TRANSFER, "1", key.owner(clientId), key.nodePrefix, clientId, dead, self])
        )))
      const sessions = new Set(clients.filter((_, index) => moved[index] === 1))
      adoptedFrom.set(dead, sessions)
      yield* serving.adopt(Array.from(sessions))
      // from here on, what is sent to it comes here
      yield* attempt("adopt", () => send(client, ["SET", key.gone(dead), self, "PX", String(GONE_MS)]))
      yield* Effect.forkDetach(drain(serving, dead, sessions.size).pipe(logged(`delivering what node ${dead} left`)))
    })

  /** Adopts `dead` unless another node does (its lock); with `wait`, until whoever adopts it is done. */
  const adoptOrAwait = (dead: string, wait: boolean): Effect.Effect<void, ClusterError> =>
    Effect.gen(function*() {
      const serving = host
      if (serving === undefined) return
      const won = yield* attempt("adopt", () => send<string | null>(client, ["SET", key.adopter(dead), self, "NX", "PX", String(ADOPTION_LOCK_MS)]))
      if (won !== null) {
        yield* Effect.logWarning(`cluster: node ${dead} is gone (no heartbeat); adopting its sessions`)
        return yield* adopt(serving, dead)
      }
      if (!wait) return
      for (let waited = 0; waited < ADOPTION_LOCK_MS; waited += heartbeatMs) {
        const [gone, locked] = yield* attempt("adopt", () =>
          Promise.all([send<number>(client, ["EXISTS", key.gone(dead)]), send<number>(client, ["EXISTS", key.adopter(dead)])]))
        // adopted, or its adopter gave up (died): the claim asks again
        if (gone === 1 || locked === 0) return
        yield* Effect.sleep(heartbeatMs)
      }
    })
  adoptIfFree = (node) => adoptOrAwait(node, false).pipe(logged(`adopting node ${node}`))

  const serve = (serving: Host) =>
    Effect.gen(function*() {
      host = serving
      // this node's stream, in order; an entry goes once handled (its sessions hold the messages)
      yield* Effect.forkScoped(Effect.forever(
        Effect.gen(function*() {
          const reply = yield* attempt("read stream", () =>
            sendForBytes(reader, ["XREAD", "COUNT", String(READ_COUNT), "BLOCK", String(READ_BLOCK_MS), "STREAMS", key.stream(self), "0"]))
          const entries = StreamEntries.fromRead(reply)
          if (entries.length === 0) return
          yield* handle(serving, entries, onlyAdopted)
          yield* serving.durable
          yield* attempt("read stream", () => send(reader, ["XDEL", key.stream(self), ...entries.map((entry) => entry.id)]))
        }).pipe(
          // Redis away: the entries stay in the stream, read again once it is back
          Effect.catch((error) => Effect.andThen(Effect.sync(() => failed(error.cause)), Effect.sleep(heartbeatMs)))
        )
      ))
    })

  const restored = (clientIds: ReadonlyArray<string>): Effect.Effect<void> =>
    Effect.gen(function*() {
      // the nodes of before first (their clients, what was sent to them), then whatever else is stored
      const members = membersOf(yield* attempt("restore", () => send<unknown>(client, ["SMEMBERS", key.nodes])))
      for (const node of members) {
        if (node === self) continue
        const alive = yield* attempt("restore", () => send<number>(client, ["EXISTS", key.alive(node)]))
        if (alive === 0) yield* adoptOrAwait(node, true)
      }
      yield* attempt("restore", () =>
        Promise.all(clientIds.map((clientId) =>
          send(client, ["EVAL", Scripts.CLAIM, "1", key.owner(clientId), key.nodePrefix, self, clientId, "1"])
        )))
    }).pipe(Effect.catch((error) => Effect.logWarning(`cluster: ${error.message}`)))

  // ownership of client ids: `owner:<clientId>` names the node whose connection (or, offline,
  // whose router) has the client; a CONNECT elsewhere claims it and the old owner hands it over
  const claimOnce = (clientId: string, force: boolean) =>
    attempt("claim", () =>
      send<[string, string]>(client, ["EVAL", Scripts.CLAIM, "1", key.owner(clientId), key.nodePrefix, self, clientId, force ? "1" : "0"]))

  /** Asks the live `owner` for `clientId` through its stream; says how the wait ended. */
  const ask = (clientId: string, owner: string) => {
    const request = randomUUID()
    return Effect.gen(function*() {
      const answered = new Promise<void>((resolve) => awaitingRelease.set(request, resolve))
      yield* attempt("claim", () => sendTo(owner, "c", Envelope.encodeTakeover({ _tag: "Claim", clientId, from: self, request })))
      for (let waited = 0; waited < CLAIM_TIMEOUT_MS; waited += heartbeatMs) {
        if ((yield* Effect.promise(() => answered).pipe(Effect.timeoutOption(heartbeatMs)))._tag === "Some") return "answered" as const
        // it died meanwhile: it is adopted, and the claim goes to the adopter
        if ((yield* attempt("claim", () => send<number>(client, ["EXISTS", key.alive(owner)]))) === 0) return "died" as const
      }
      return "timeout" as const
    }).pipe(Effect.ensuring(Effect.sync(() => awaitingRelease.delete(request))))
  }

  const claim = (clientId: string): Effect.Effect<void> =>
    Effect.gen(function*() {
      for (let round = 0; round < 5; round++) {
        const [status, owner] = yield* claimOnce(clientId, false)
        if (status === "ok") return
        if (status === "dead") {
          yield* adoptOrAwait(owner, true)
          continue
        }
        const outcome = yield* ask(clientId, owner)
        if (outcome === "timeout") {
          yield* Effect.logWarning(`cluster: node ${owner} did not let ${clientId} go within ${CLAIM_TIMEOUT_MS} ms; taking it over anyway`)
          break
        }
      }
      yield* claimOnce(clientId, true)
    }).pipe(
      // without Redis there is no one to ask: the CONNECT goes on as on a single broker
      Effect.catch((error) => Effect.logWarning(`cluster: ${error.message}`))
    )
  const settled = (clientId: string): Effect.Effect<void> => {
    const from = claimedFrom.get(clientId)
    if (from === undefined) return Effect.void
    claimedFrom.delete(clientId)
    // what waits for the end of this turn to go to that node goes first: it was routed before the
    // client's subscriptions were here, and that node must still send it on
    const waiting = batches.get(from)
    if (waiting !== undefined) {
      batches.delete(from)
      sendBatch(from, waiting)
    }
    return Effect.ignore(attempt("settle", () => sendTo(from, "s", Envelope.encodeSettled({ clientId, node: self }))))
  }
  const owns = (clientId: string): Effect.Effect<boolean> =>
    attempt("ownership", () => send<string | null>(client, ["GET", key.owner(clientId)])).pipe(
      Effect.map((owner) => owner === null || owner === self),
      Effect.catch(() => Effect.succeed(true))
    )
  const release = (clientId: string): Effect.Effect<void> =>
    Effect.ignore(attempt("release", () => send(client, ["EVAL", Scripts.RELEASE, "1", key.owner(clientId), key.nodePrefix, self, clientId])))
  // answers to this node's claims
  yield* Effect.forkScoped(Effect.forever(
    Effect.flatMap(Queue.take(takeovers), (received) => {
      const takeover = Envelope.decodeTakeover(received.message)
      if (takeover?._tag !== "Released") return Effect.logWarning("cluster: an unreadable answer to a claim, ignored")
      // that node sends on what it gets for the client until this one says it routes it itself
      claimedFrom.set(takeover.clientId, takeover.node)
      awaitingRelease.get(takeover.request)?.()
      awaitingRelease.delete(takeover.request)
      return Effect.void
    })
  ))

  const node: ClusterNode = {
    nodeId: self,
    peersAtStart,
    forward,
    serve,
    restored,
    claim,
    settled,
    owns,
    release
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
