/**
 * Session transitions as pure functions: `(state, event) → (state', outgoing)`.
 * No Effect, no I/O, no clock: the broker's Effect programs call these inside an
 * atomic `SessionStateProvider.modify` and then send what they return. This is what
 * makes the property tests cheap and lets the same rules run over any provider.
 */
import type { Message } from "./Message.ts"
import {
  type ConnectRequest,
  type InflightMessage,
  type InflightStage,
  make,
  MAX_PACKET_ID,
  type SessionState,
  type Subscription
} from "./SessionState.ts"

/** A packet the session wants sent to its client. */
export type Outgoing =
  | { readonly _tag: "Publish"; readonly message: Message; readonly packetId: number | undefined; readonly dup: boolean }
  | { readonly _tag: "Pubrel"; readonly packetId: number }

/** Broker-wide limits the transitions enforce. */
export interface Limits {
  /** Bound of the per-session queue; when full the oldest message is dropped (and counted). */
  readonly maxQueuedMessages: number
  /** Whether QoS 0 messages are queued for offline clients (MQTT leaves it to the server; default off). */
  readonly queueQos0: boolean
}

/** The result of a transition. */
export interface Step {
  readonly state: SessionState
  readonly outgoing: ReadonlyArray<Outgoing>
}

const none: ReadonlyArray<Outgoing> = []

const publish = (message: Message, packetId: number | undefined, dup: boolean): Outgoing => ({
  _tag: "Publish",
  message,
  packetId,
  dup
})

/** The handshake stage a freshly sent message starts in. */
const firstStage = (message: Message): InflightStage => (message.qos === 2 ? "pubrec" : "puback")

/** The next free packet id at or after `state.nextPacketId`, cycling 1..65535 (ids in flight are skipped). */
export const allocatePacketId = (state: SessionState): number => {
  const used = new Set<number>()
  for (const entry of state.inflight) used.add(entry.packetId)
  let id = state.nextPacketId
  while (used.has(id)) id = id >= MAX_PACKET_ID ? 1 : id + 1
  return id
}

const nextAfter = (id: number): number => (id >= MAX_PACKET_ID ? 1 : id + 1)

/** Appends to the bounded queue, dropping the oldest when it is full. */
const enqueue = (state: SessionState, message: Message, limits: Limits): SessionState => {
  if (limits.maxQueuedMessages <= 0) return { ...state, dropped: state.dropped + 1 }
  if (state.queue.length < limits.maxQueuedMessages) return { ...state, queue: state.queue.push(message) }
  const excess = state.queue.length - limits.maxQueuedMessages + 1
  return { ...state, queue: state.queue.drop(excess).push(message), dropped: state.dropped + excess }
}

/** Sends a QoS>0 message now: allocates its packet id and records it in flight. */
const sendInflight = (state: SessionState, message: Message): [SessionState, Outgoing] => {
  const packetId = allocatePacketId(state)
  const entry: InflightMessage = { packetId, message, stage: firstStage(message) }
  return [
    { ...state, inflight: [...state.inflight, entry], nextPacketId: nextAfter(packetId) },
    publish(message, packetId, false)
  ]
}

/** Moves queued messages into flight while the window has room (the client is online). */
export const fillWindow = (state: SessionState): Step => {
  if (state.queue.length === 0) return { state, outgoing: none }
  let current = state
  const outgoing: Array<Outgoing> = []
  let taken = 0
  while (taken < state.queue.length) {
    const message = state.queue.at(taken)!
    if (message.qos === 0) {
      outgoing.push(publish(message, undefined, false))
    } else {
      if (current.inflight.length >= current.receiveMaximum) break
      const [next, out] = sendInflight(current, message)
      current = next
      outgoing.push(out)
    }
    taken++
  }
  return taken === 0 ? { state, outgoing: none } : { state: { ...current, queue: state.queue.drop(taken) }, outgoing }
}

/** The result of CONNECT: the session to keep, whether it was resumed, and what to resend. */
export interface Connected extends Step {
  readonly sessionPresent: boolean
  /** A stored session that clean start discarded (its subscriptions must leave the router). */
  readonly discarded: SessionState | undefined
}

/**
 * CONNECT: clean start (or nothing stored) begins a new session; otherwise the stored one is
 * resumed: in-flight messages are resent in their original order (PUBLISH with DUP=1, or PUBREL
 * for those past PUBREC), then the queue drains into the window.
 */
export const connect = (stored: SessionState | undefined, request: ConnectRequest): Connected => {
  if (request.clean || stored === undefined) {
    return { state: make(request), outgoing: none, sessionPresent: false, discarded: stored }
  }
  const resumed: SessionState = {
    ...stored,
    clean: request.clean,
    expiryInterval: request.expiryInterval,
    receiveMaximum: request.receiveMaximum,
    will: request.will,
    disconnectedAt: undefined
  }
  const resend: Array<Outgoing> = resumed.inflight.map((entry) =>
    entry.stage === "pubcomp"
      ? { _tag: "Pubrel", packetId: entry.packetId }
      : publish(entry.message, entry.packetId, true)
  )
  const filled = fillWindow(resumed)
  return {
    state: filled.state,
    outgoing: resend.concat(filled.outgoing),
    sessionPresent: true,
    discarded: undefined
  }
}

/** SUBSCRIBE: adds or replaces each granted subscription. */
export const subscribe = (
  state: SessionState,
  granted: ReadonlyArray<readonly [filter: string, subscription: Subscription]>
): SessionState => {
  if (granted.length === 0) return state
  const subscriptions = new Map(state.subscriptions)
  for (const [filter, subscription] of granted) subscriptions.set(filter, subscription)
  return { ...state, subscriptions }
}

/** UNSUBSCRIBE: removes each filter (absent ones are ignored, as the spec allows). */
export const unsubscribe = (state: SessionState, filters: ReadonlyArray<string>): SessionState => {
  if (!filters.some((filter) => state.subscriptions.has(filter))) return state
  const subscriptions = new Map(state.subscriptions)
  for (const filter of filters) subscriptions.delete(filter)
  return { ...state, subscriptions }
}

/**
 * A message routed to this session, already at its delivery QoS. Online, it is sent when the
 * window has room and nothing older is queued (order is kept); otherwise it is queued. QoS 0 is
 * sent at once when online and, offline, queued only if `limits.queueQos0`.
 */
export const deliver = (state: SessionState, message: Message, online: boolean, limits: Limits): Step => {
  if (message.qos === 0) {
    if (online) return { state, outgoing: [publish(message, undefined, false)] }
    return limits.queueQos0 ? { state: enqueue(state, message, limits), outgoing: none } : { state, outgoing: none }
  }
  if (online && state.queue.length === 0 && state.inflight.length < state.receiveMaximum) {
    const [next, out] = sendInflight(state, message)
    return { state: next, outgoing: [out] }
  }
  return { state: enqueue(state, message, limits), outgoing: none }
}

const indexOf = (state: SessionState, packetId: number, stage: InflightStage): number =>
  state.inflight.findIndex((entry) => entry.packetId === packetId && entry.stage === stage)

/** Releases an in-flight entry (acks only arrive while online, so the window refills). */
const release = (state: SessionState, index: number): Step => {
  const inflight = state.inflight.slice()
  inflight.splice(index, 1)
  return fillWindow({ ...state, inflight })
}

/** PUBACK for a QoS 1 message: releases its packet id and refills the window. Unknown ids are ignored. */
export const puback = (state: SessionState, packetId: number): Step => {
  const index = indexOf(state, packetId, "puback")
  return index < 0 ? { state, outgoing: none } : release(state, index)
}

/** PUBREC for a QoS 2 message: it moves to `pubcomp` and PUBREL is sent (again, for a duplicate PUBREC). */
export const pubrec = (state: SessionState, packetId: number): Step => {
  const index = indexOf(state, packetId, "pubrec")
  if (index < 0) {
    return indexOf(state, packetId, "pubcomp") < 0
      ? { state, outgoing: none }
      : { state, outgoing: [{ _tag: "Pubrel", packetId }] }
  }
  const inflight = state.inflight.slice()
  inflight[index] = { ...inflight[index]!, stage: "pubcomp" }
  return { state: { ...state, inflight }, outgoing: [{ _tag: "Pubrel", packetId }] }
}

/** PUBCOMP: the QoS 2 handshake is complete; the packet id is released. Unknown ids are ignored. */
export const pubcomp = (state: SessionState, packetId: number): Step => {
  const index = indexOf(state, packetId, "pubcomp")
  return index < 0 ? { state, outgoing: none } : release(state, index)
}

/** An inbound QoS 2 PUBLISH: `forward` is false for a re-sent PUBLISH whose PUBREL has not come yet. */
export const receiveQos2 = (state: SessionState, packetId: number): { readonly state: SessionState; readonly forward: boolean } =>
  state.awaitingPubrel.includes(packetId)
    ? { state, forward: false }
    : { state: { ...state, awaitingPubrel: [...state.awaitingPubrel, packetId] }, forward: true }

/** An inbound PUBREL: the packet id may be used for a new message again. */
export const pubrel = (state: SessionState, packetId: number): SessionState =>
  state.awaitingPubrel.includes(packetId)
    ? { ...state, awaitingPubrel: state.awaitingPubrel.filter((id) => id !== packetId) }
    : state

/** The result of a connection ending. */
export interface Ended {
  /** The session to keep, or undefined when it ends with the connection. */
  readonly state: SessionState | undefined
  /** The will to publish (only when the connection ended without DISCONNECT). */
  readonly will: Message | undefined
}

/**
 * The connection ended: by DISCONNECT (`graceful`, the will is discarded) or otherwise (the will is
 * published). A clean session ends with it; a persistent one is kept, marked disconnected at `now`.
 */
export const disconnect = (state: SessionState, graceful: boolean, now: number): Ended => {
  const will = graceful ? undefined : state.will
  if (state.clean || state.expiryInterval === 0) return { state: undefined, will }
  return { state: { ...state, will: undefined, disconnectedAt: now }, will }
}
