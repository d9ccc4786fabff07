/**
 * Session transitions as pure functions: `(state, event) → (state', outgoing)`.
 * No Effect, no I/O, no clock: the broker's Effect programs call these inside an
 * atomic `SessionStateProvider.modify` and then send what they return. This is what
 * makes the property tests cheap and lets the same rules run over any provider.
 */
import { publishSize } from "./PacketSize.ts"
import { isExpired, type Message } from "./Message.ts"
import {
  type ConnectRequest,
  type InflightMessage,
  type InflightStage,
  expiresAt,
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

/** Whether the client accepts a packet this large (MQTT 5 Maximum Packet Size); larger ones are not sent. */
const fits = (state: SessionState, message: Message): boolean =>
  state.maximumPacketSize === undefined || publishSize(message) <= state.maximumPacketSize

/** Whether `id` is held by a message in flight. */
const inUse = (state: SessionState, id: number): boolean => inList(state.inflight, id)

/** The next free packet id at or after `state.nextPacketId`, cycling 1..65535 (ids in flight are skipped). */
export const allocatePacketId = (state: SessionState): number => {
  // ids go out in cycle order, so the next one is almost always free: no set is built per message
  let id = state.nextPacketId
  while (inUse(state, id)) id = id >= MAX_PACKET_ID ? 1 : id + 1
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

/** How much of the client's window is in use: in-flight entries sent on this connection. */
export const windowUsed = (state: SessionState): number => {
  let used = 0
  for (const entry of state.inflight) if (entry.awaitingResend !== true) used++
  return used
}

const hasAwaitingResend = (state: SessionState): boolean => state.inflight.some((entry) => entry.awaitingResend === true)

/** Re-sends (DUP=1, same packet id) the entries a smaller window held back, oldest first, while it has room. */
const resendHeldBack = (state: SessionState, outgoing: Array<Outgoing>): SessionState => {
  if (!hasAwaitingResend(state)) return state
  let used = windowUsed(state)
  if (used >= state.receiveMaximum) return state
  const inflight = state.inflight.map((entry) => {
    if (entry.awaitingResend !== true || used >= state.receiveMaximum) return entry
    used++
    outgoing.push(publish(entry.message, entry.packetId, true))
    return { packetId: entry.packetId, message: entry.message, stage: entry.stage }
  })
  return { ...state, inflight }
}

/**
 * Fills the window while it has room (the client is online): first what a smaller window held
 * back in flight, then queued messages. Messages that expired while queued, or that are larger
 * than the client accepts, are dropped on the way.
 */
export const fillWindow = (state: SessionState, now = 0): Step => {
  if (state.queue.length === 0 && !hasAwaitingResend(state)) return { state, outgoing: none }
  const outgoing: Array<Outgoing> = []
  const current = resendHeldBack(state, outgoing)
  if (hasAwaitingResend(current)) return { state: current, outgoing }
  const filled = fillFromQueue(current, undefined, outgoing, now)
  // nothing resent and nothing taken from the queue: nothing changed
  return filled === state ? { state, outgoing: none } : { state: filled, outgoing }
}

/**
 * Sends queued messages while the window has room, nothing being held back: `inflight` is what is
 * in flight when it differs from `state.inflight` (an array this call may extend: the caller made
 * it and hands it over), or undefined. One copy of the in-flight list and one new state at most,
 * however many messages go out: this runs for every PUBACK of a client with a queue.
 */
const fillFromQueue = (
  state: SessionState,
  handed: Array<InflightMessage> | undefined,
  outgoing: Array<Outgoing>,
  now: number
): SessionState => {
  const queue = state.queue
  let inflight = handed
  let nextPacketId = state.nextPacketId
  // nothing is held back, so the window in use is everything in flight
  let used = (inflight ?? state.inflight).length
  let taken = 0
  while (taken < queue.length) {
    const message = queue.at(taken)!
    if (isExpired(message, now) || !fits(state, message)) {
      // never sent: MQTT 5 says an expired or oversized message is discarded for this client
    } else if (message.qos === 0) {
      outgoing.push(publish(message, undefined, false))
    } else {
      if (used >= state.receiveMaximum) break
      used++
      inflight ??= state.inflight.slice()
      let packetId = nextPacketId
      while (inList(inflight, packetId)) packetId = nextAfter(packetId)
      inflight.push({ packetId, message, stage: firstStage(message) })
      nextPacketId = nextAfter(packetId)
      outgoing.push(publish(message, packetId, false))
    }
    taken++
  }
  if (taken === 0) return handed === undefined ? state : { ...state, inflight: handed }
  return inflight === undefined
    ? { ...state, queue: queue.drop(taken) }
    : { ...state, queue: queue.drop(taken), inflight, nextPacketId }
}

/** Whether `id` is held by an entry of `inflight`. */
const inList = (inflight: ReadonlyArray<InflightMessage>, id: number): boolean => {
  for (const entry of inflight) if (entry.packetId === id) return true
  return false
}

/** The result of CONNECT: the session to keep, whether it was resumed, and what to resend. */
export interface Connected extends Step {
  readonly sessionPresent: boolean
  /** A stored session that ended here: clean start discarded it, or it had expired (its subscriptions must leave the router). */
  readonly discarded: SessionState | undefined
  /** A will to publish now: a delayed will that was due, or one left waiting by the session this CONNECT ended. */
  readonly will: Message | undefined
}

/**
 * CONNECT: clean start (or nothing stored, or a session whose expiry has passed) begins a new
 * session; otherwise the stored one is resumed: in-flight messages are resent in their original
 * order (PUBLISH with DUP=1, or PUBREL for those past PUBREC), then the queue drains into the window.
 * What time already decided comes first: a stored session past its expiry has ended even if the
 * broker's sweep has not reached it yet, and a delayed will already due is published, not cancelled.
 */
export const connect = (stored0: SessionState | undefined, request: ConnectRequest, now = 0): Connected => {
  let stored = stored0
  let due: Message | undefined
  let ended: SessionState | undefined
  if (stored !== undefined && stored.disconnectedAt !== undefined) {
    const expired = expire(stored, now)
    due = expired.will
    if (expired.state === undefined) ended = stored
    stored = expired.state
  }
  if (request.clean || stored === undefined) {
    // clean start ends the stored session: a delayed will still waiting in it goes out now
    const waiting = stored !== undefined && stored.willAt !== undefined ? stored.will : undefined
    return { state: make(request), outgoing: none, sessionPresent: false, discarded: stored ?? ended, will: due ?? waiting }
  }
  // A window smaller than what is in flight (MQTT 5 Receive Maximum can shrink between connections):
  // the newest unacknowledged PUBLISHes keep their packet ids and wait to be re-sent as it opens.
  // Messages the client no longer accepts (Maximum Packet Size) count as delivered.
  const kept: Array<InflightMessage> = []
  let used = 0
  for (const entry of stored.inflight) {
    if (entry.stage === "pubcomp") {
      // past PUBREC (never held back: pubrec clears the flag): PUBREL is always re-sent
      kept.push(entry)
      used++
      continue
    }
    if (request.maximumPacketSize !== undefined && publishSize(entry.message) > request.maximumPacketSize) continue
    if (used < request.receiveMaximum) {
      kept.push(entry.awaitingResend === true ? { packetId: entry.packetId, message: entry.message, stage: entry.stage } : entry)
      used++
    } else {
      kept.push({ packetId: entry.packetId, message: entry.message, stage: entry.stage, awaitingResend: true })
    }
  }
  const resumed: SessionState = {
    ...stored,
    clean: request.clean,
    expiryInterval: request.expiryInterval,
    receiveMaximum: request.receiveMaximum,
    maximumPacketSize: request.maximumPacketSize,
    // reconnecting in time cancels a delayed will; the new connection brings its own
    will: request.will,
    willDelayInterval: request.willDelayInterval ?? 0,
    willAt: undefined,
    inflight: kept.every((entry, i) => entry === stored.inflight[i]) && kept.length === stored.inflight.length ? stored.inflight : kept,
    disconnectedAt: undefined
  }
  const resend: Array<Outgoing> = []
  for (const entry of resumed.inflight) {
    if (entry.awaitingResend === true) continue
    resend.push(entry.stage === "pubcomp" ? { _tag: "Pubrel", packetId: entry.packetId } : publish(entry.message, entry.packetId, true))
  }
  const filled = fillWindow(resumed, now)
  return {
    state: filled.state,
    outgoing: resend.concat(filled.outgoing),
    sessionPresent: true,
    discarded: ended,
    will: due
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
export const deliver = (state: SessionState, message: Message, online: boolean, limits: Limits, now = 0): Step => {
  if (isExpired(message, now) || !fits(state, message)) return { state, outgoing: none }
  if (message.qos === 0) {
    if (online) return { state, outgoing: [publish(message, undefined, false)] }
    return limits.queueQos0 ? { state: enqueue(state, message, limits), outgoing: none } : { state, outgoing: none }
  }
  // one scan: the window in use equals what is in flight exactly when nothing is held back
  const used = windowUsed(state)
  if (online && state.queue.length === 0 && used === state.inflight.length && used < state.receiveMaximum) {
    const [next, out] = sendInflight(state, message)
    return { state: next, outgoing: [out] }
  }
  return { state: enqueue(state, message, limits), outgoing: none }
}

const indexOf = (state: SessionState, packetId: number, stage: InflightStage): number =>
  state.inflight.findIndex((entry) => entry.packetId === packetId && entry.stage === stage)

/** Releases an in-flight entry (acks only arrive while online, so the window refills). */
const release = (state: SessionState, index: number, now: number): Step => {
  // one copy of its final size (the entry sent next usually takes the freed slot), no splice
  const inflight = state.inflight.slice()
  for (let i = index; i < inflight.length - 1; i++) inflight[i] = inflight[i + 1]!
  inflight.pop()
  // held-back entries go first (rare: a window that shrank across a reconnect)
  if (hasAwaitingResend(state)) return fillWindow({ ...state, inflight }, now)
  if (state.queue.length === 0) return { state: { ...state, inflight }, outgoing: none }
  const outgoing: Array<Outgoing> = []
  return { state: fillFromQueue(state, inflight, outgoing, now), outgoing }
}

/** PUBACK for a QoS 1 message: releases its packet id and refills the window. Unknown ids are ignored. */
export const puback = (state: SessionState, packetId: number, now = 0): Step => {
  const index = indexOf(state, packetId, "puback")
  return index < 0 ? { state, outgoing: none } : release(state, index, now)
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
  // past PUBREC the client has the message: it is never re-sent as a PUBLISH, even if a smaller window held it back
  inflight[index] = { packetId, message: inflight[index]!.message, stage: "pubcomp" }
  return { state: { ...state, inflight }, outgoing: [{ _tag: "Pubrel", packetId }] }
}

/** PUBCOMP: the QoS 2 handshake is complete; the packet id is released. Unknown ids are ignored. */
export const pubcomp = (state: SessionState, packetId: number, now = 0): Step => {
  const index = indexOf(state, packetId, "pubcomp")
  return index < 0 ? { state, outgoing: none } : release(state, index, now)
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

/** The result of a connection ending, or of time passing for an offline session. */
export interface Ended {
  /** The session to keep, or undefined when it has ended. */
  readonly state: SessionState | undefined
  /** The will to publish now. */
  readonly will: Message | undefined
}

/** How a connection ended. */
export interface DisconnectOptions {
  /** The will is discarded (DISCONNECT, except MQTT 5 reason 0x04); otherwise it is published. */
  readonly graceful: boolean
  /** MQTT 5 DISCONNECT may change the Session Expiry Interval. */
  readonly expiryInterval?: number | undefined
}

/**
 * The connection ended. A session whose expiry interval is 0 ends with it (3.1.1 clean=1 maps to
 * 0); any other is kept, marked disconnected at `now`. Unless the end was graceful the will is due:
 * at once, or (MQTT 5 Will Delay Interval) when the delay passes or the session ends, whichever is
 * first; reconnecting before then cancels it.
 */
export const disconnect = (state: SessionState, options: boolean | DisconnectOptions, now: number): Ended => {
  const { expiryInterval = state.expiryInterval, graceful } = typeof options === "boolean" ? { graceful: options } : options
  const will = graceful ? undefined : state.will
  if (expiryInterval === 0) return { state: undefined, will }
  const delayed = will !== undefined && state.willDelayInterval > 0
  return {
    state: {
      ...state,
      expiryInterval,
      will: delayed ? will : undefined,
      willAt: delayed ? now + state.willDelayInterval * 1000 : undefined,
      disconnectedAt: now
    },
    will: delayed ? undefined : will
  }
}

/**
 * Time passed for an offline session: a delayed will that is due is published, and a session past
 * its expiry ends (publishing a will still pending, since the session's end is the latest a will waits).
 */
export const expire = (state: SessionState, now: number): Ended => {
  const end = expiresAt(state)
  if (end !== undefined && end <= now) return { state: undefined, will: state.willAt !== undefined ? state.will : undefined }
  if (state.willAt !== undefined && state.willAt <= now) {
    return { state: { ...state, will: undefined, willAt: undefined }, will: state.will }
  }
  return { state, will: undefined }
}
