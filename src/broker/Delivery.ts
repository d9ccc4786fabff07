/**
 * Routing a published message to every matching session. One copy per client (the highest
 * granted QoS among overlapping subscriptions, with every matching MQTT 5 Subscription
 * Identifier), at delivery QoS = min(publish, granted); one member per shared subscription.
 * QoS 0 to an online client is written straight to its outbox (a congested one holds the
 * publisher back, see `FlowControl`); everything else is a session transition under the client's
 * lock, so an online client gets it now and an offline one gets it queued. With an `Authorizer`,
 * a client that may not `receive` the topic is skipped.
 *
 * Over the memory provider a delivery whose client's lock is free is a plain function call (no
 * Effect, no fiber step): a fan-out to 50 QoS 1 subscribers builds no Effect at all. Only what
 * must wait (a lock held by a CONNECT or a takeover, a congested subscriber, an `Authorizer`, a
 * provider that does I/O) is left as an Effect, run in order after what was done at once.
 */
import { Effect } from "effect"
import type { Authorizer } from "../auth/Authorizer.ts"
import type { Matched, Route, SharedGroup } from "../routing/SubscriptionIndex.ts"
import { type Message, minQos, type QoS } from "../session/Message.ts"
import type { SessionStoreError } from "../session/SessionStateProvider.ts"
import type { Core } from "./Core.ts"
import * as FlowControl from "./FlowControl.ts"

/** Whether a client id has a live connection (asked only when a subscriber is congested). */
const isLive = (core: Core) => (clientId: string): boolean => core.registry.get(clientId) !== undefined

/**
 * The message as `matched` receives it: delivery QoS = min(publish, granted), RETAIN kept only for
 * Retain As Published, its Subscription Identifiers. The message itself when that is what it
 * already is (most deliveries: no object per subscriber); otherwise the variant at that QoS with
 * RETAIN=0, built at most once per publish in `variants` (made at the first one needed).
 */
const forClient = (message: Message, matched: Matched, variants: Array<Message | undefined>): Message => {
  const qos = minQos(message.qos, matched.qos)
  const retain = matched.retainAsPublished && message.retain
  if (matched.identifiers !== undefined || retain) {
    return { ...message, qos, retain, ...(matched.identifiers === undefined ? {} : { subscriptionIds: matched.identifiers }) }
  }
  if (qos === message.qos && !message.retain) return message
  return (variants[qos] ??= { ...message, qos, retain: false })
}

/** Delivers one message to one client (under its lock for anything that touches the session). */
export const deliverTo = (core: Core, clientId: string, message: Message): Effect.Effect<void, SessionStoreError> =>
  core.locks.withLock(
    clientId,
    Effect.suspend(() => {
      const live = core.registry.get(clientId)
      return Effect.map(core.sessions.deliver(clientId, message, live !== undefined), (outgoing) => {
        if (live !== undefined && outgoing.length > 0) live.send(outgoing)
      })
    })
  )

/**
 * Delivers one message to one client now when nothing needs awaiting: the provider changes
 * sessions synchronously (memory) and nobody holds or waits for the client's lock, so this
 * synchronous section is as good as holding it. Otherwise returns the Effect that delivers it
 * under the lock (it has not happened yet).
 */
const deliverNow = (core: Core, clientId: string, message: Message): Effect.Effect<void, SessionStoreError> | undefined => {
  const sync = core.sessions.sync
  if (sync === undefined || !core.locks.isFree(clientId)) return deliverTo(core, clientId, message)
  const live = core.registry.get(clientId)
  const outgoing = sync.deliver(clientId, message, live !== undefined)
  if (live !== undefined && outgoing.length > 0) live.send(outgoing)
  return undefined
}

/** As `deliverNow`, for any QoS: QoS 0 to an online client goes straight to its outbox. */
const deliverOne = (
  core: Core,
  clientId: string,
  message: Message,
  publisherId: string | undefined
): Effect.Effect<void, SessionStoreError> | undefined => {
  if (message.qos === 0) {
    const live = core.registry.get(clientId)
    if (live !== undefined) {
      const congested = live.sendQos0(message)
      return congested === undefined
        ? undefined
        : FlowControl.congested(core.registry.flow, congested, clientId, publisherId, isLive(core))
    }
    if (!core.sessions.limits.queueQos0) return undefined
  }
  return deliverNow(core, clientId, message)
}

/** One member of a shared subscription: the next online one in turn, else the next one (its session queues it). */
const pickMember = (core: Core, group: SharedGroup): [string, Matched] | undefined => {
  const members = Array.from(group.members)
  if (members.length === 0) return undefined
  const start = group.cursor % members.length
  let chosen = members[start]!
  for (let i = 0; i < members.length; i++) {
    const candidate = members[(start + i) % members.length]!
    if (core.registry.get(candidate[0]) !== undefined) {
      chosen = candidate
      group.cursor = start + i + 1
      break
    }
  }
  if (chosen === members[start] && core.registry.get(chosen[0]) === undefined) group.cursor = start + 1
  const [clientId, sub] = chosen
  return [clientId, {
    qos: sub.qos,
    retainAsPublished: sub.retainAsPublished === true,
    identifiers: sub.identifier === undefined ? undefined : [sub.identifier]
  }]
}

/**
 * Whether `clientId` may receive a message on `topic`, asked as the user of its connection (or
 * of its last one, for a message its offline session queues).
 */
export const mayReceive = (
  core: Core,
  authorizer: Authorizer["Service"],
  clientId: string,
  topic: string
): Effect.Effect<boolean> =>
  authorizer.authorize({ username: core.registry.usernameOf(clientId), clientId, action: "receive", topic })

/**
 * Publishes a message from a client (`publisherId`, for No Local) or a will: retained bookkeeping,
 * then fan-out (and to other cluster nodes). Nothing happens until the Effect runs.
 */
export const publish = (core: Core, message: Message, publisherId?: string): Effect.Effect<void, SessionStoreError> =>
  Effect.suspend(() => publishNow(core, message, publisherId) ?? Effect.void)

/**
 * `publish` begun at once: whatever can be done synchronously (every delivery over the memory
 * provider whose client's lock is free, QoS 0 to an uncongested client) is done before this
 * returns, in order; what is left is returned as an Effect that must be run next, before anything
 * else this publisher sends (undefined: nothing is left). The PUBLISH handler's fast path.
 */
export const publishNow = (
  core: Core,
  message: Message,
  publisherId: string | undefined
): Effect.Effect<void, SessionStoreError> | undefined => {
  // the clock is read for a sample of the messages only: two reads would cost more than the rest of the counting
  const started = core.stats.sampleLatency() ? performance.now() : -1
  if (message.retain) core.router.retain(message)
  const cluster = core.cluster
  if (cluster !== undefined) {
    return Effect.gen(function*() {
      // routed here and sent to the peers in one synchronous step: a client moving between nodes
      // meanwhile is routed by one of them (see ForwardingAddresses), never by neither
      const route = core.router.subscriptions.route(message.topic, publisherId)
      // the peers first: then a QoS 1/2 message is with Redis before any local subscriber sees it
      const serve = yield* cluster.forward(message, publisherId, route.shared)
      yield* fanOut(core, route, message, publisherId, serve)
      if (started >= 0) core.stats.deliveryLatency.observe((performance.now() - started) / 1000)
    })
  }
  const route = core.router.subscriptions.route(message.topic, publisherId)
  if (route.clients.size === 0 && route.shared.length === 0) return undefined
  const rest = fanOutNow(core, route, message, publisherId)
  if (started < 0) return rest
  const observe = () => core.stats.deliveryLatency.observe((performance.now() - started) / 1000)
  if (rest === undefined) return void observe()
  return Effect.map(rest, observe)
}

/**
 * Runs a plain generator of Effects (as `Effect.gen` would) synchronously up to its first yielded
 * Effect, and returns an Effect running the rest from there; undefined when it ran to its end.
 */
const runNow = <E>(steps: Generator<Effect.Effect<unknown, E>, void, any>): Effect.Effect<void, E> | undefined => {
  const first = steps.next()
  if (first.done === true) return undefined
  return Effect.gen(function*() {
    let next: IteratorResult<Effect.Effect<unknown, E>, void> = first
    while (next.done !== true) next = steps.next(yield* next.value)
  })
}

/**
 * Delivers a message another cluster node forwarded: to this node's matching subscribers and the
 * shared subscriptions it was asked to serve. Its retained bookkeeping happened where it was published.
 * With `only`, to those of the subscribers only (a message sent to a dead node, delivered to the
 * sessions this node adopted from it: its own subscribers had their copy).
 */
export const publishForwarded = (
  core: Core,
  message: Message,
  publisherId: string | undefined,
  shared: ReadonlySet<string>,
  only?: ReadonlySet<string>
): Effect.Effect<void, SessionStoreError> => {
  const matched = core.router.subscriptions.route(message.topic, publisherId)
  const route = only === undefined ? matched : { clients: new Map(Array.from(matched.clients).filter(([clientId]) => only.has(clientId))), shared: matched.shared }
  if (route.clients.size === 0 && route.shared.length === 0) return Effect.void
  return Effect.gen(() => fanOut(core, route, message, publisherId, shared))
}

/**
 * `fanOut` as a plain loop while every delivery is done at once (no `Authorizer` to ask): no
 * generator, no Effect per message. At the first delivery that must wait, returns the Effect that
 * waits for it and then runs `fanOut` for what is left, in order.
 */
const fanOutNow = (
  core: Core,
  route: Route,
  message: Message,
  publisherId: string | undefined
): Effect.Effect<void, SessionStoreError> | undefined => {
  if (core.authorizer !== undefined) return runNow(fanOut(core, route, message, publisherId, undefined, 0))
  const variants: Array<Message | undefined> = []
  let done = 0
  for (const [clientId, matched] of route.clients) {
    done++
    const pending = deliverOne(core, clientId, forClient(message, matched, variants), publisherId)
    if (pending !== undefined) return Effect.flatMap(pending, () => Effect.gen(() => fanOut(core, route, message, publisherId, undefined, done)))
  }
  if (route.shared.length === 0) return undefined
  return runNow(fanOut(core, route, message, publisherId, undefined, done))
}

/**
 * One copy to each client of `route` (but the first `skip` of them: `fanOutNow` delivered them),
 * one member for each of its shared subscriptions (only those in `serve`, by `SharedGroup.key`,
 * when given: the others are served on another cluster node). A plain generator, run inside the
 * caller's (`yield*`) or by `runNow`: no Effect of its own per message, and none yielded for a
 * delivery done at once.
 */
function* fanOut(
  core: Core,
  route: Route,
  message: Message,
  publisherId: string | undefined,
  serve: ReadonlySet<string> | undefined,
  skip = 0
): Generator<Effect.Effect<unknown, SessionStoreError>, void, any> {
  const variants: Array<Message | undefined> = []
  const authorizer = core.authorizer
  let seen = 0
  for (const [clientId, matched] of route.clients) {
    if (seen++ < skip) continue
    if (authorizer !== undefined && !(yield* mayReceive(core, authorizer, clientId, message.topic))) continue
    const pending = deliverOne(core, clientId, forClient(message, matched, variants), publisherId)
    if (pending !== undefined) yield* pending
  }
  for (const group of route.shared) {
    if (serve !== undefined && !serve.has(group.key)) continue
    const member = pickMember(core, group)
    if (member === undefined) continue
    // a member that may not read the topic does not get it, and no other member gets it instead
    if (authorizer !== undefined && !(yield* mayReceive(core, authorizer, member[0], message.topic))) continue
    const pending = deliverOne(core, member[0], forClient(message, member[1], variants), publisherId)
    if (pending !== undefined) yield* pending
  }
}
