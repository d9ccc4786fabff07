/**
 * The reference model of MQTT session semantics the property suite checks the implementation
 * against, for MQTT 3.1.1 and MQTT 5 alike (one session model, not two). It is written the plain
 * way on purpose (mutable Maps and arrays, one small function per protocol event) so that it can
 * be read against the MQTT 3.1.1 and 5.0 texts:
 *
 * - a session's pending messages are one FIFO list: the ones already sent (in flight, holding a
 *   packet id) form a prefix, the ones waiting (the queue) the rest;
 * - a session ends when its connection ends with a Session Expiry Interval of 0 (3.1.1 clean=1 is
 *   expiry 0), or when it has been offline for its expiry interval; clean start only says whether
 *   a stored session is resumed;
 * - the client's window (`receiveMaximum`) counts the in-flight messages sent on this connection;
 *   a new message is sent only while fewer than `receiveMaximum` are; the queue holds at most
 *   `maxQueuedMessages` and drops its oldest message when full, counting it;
 * - an acknowledgement releases the matching in-flight message and refills the window: first the
 *   in-flight messages a smaller window held back (below), oldest first, re-sent with DUP=1 and
 *   their packet ids; once none is held back, the queue, oldest first; a queued message that has
 *   expired, or is larger than the client's Maximum Packet Size, is dropped when the window
 *   reaches it (and never sent);
 * - on resume the in-flight messages are taken in order: a PUBREL-stage one is sent again
 *   (PUBREL) and uses the window; a PUBLISH-stage one now too large for the client is dropped (as
 *   if delivered); any other is sent again (PUBLISH, DUP=1, same packet id) while the window has
 *   room, and otherwise held back: it stays in flight with its packet id and stage, is not sent
 *   now and does not use the window, and goes out (DUP=1, same id) as the window opens. No
 *   message the client may hold ever loses its packet id. Then the queue drains into the window;
 * - a PUBREC for a held-back message moves it on to the PUBREL stage like any other (the client
 *   has its PUBLISH): it is answered by PUBREL, is no longer held back and is never sent as a
 *   PUBLISH again (only a client that acknowledges across a reconnect sends one: the harness has
 *   its clients do so with `acknowledgeHeldBack`);
 * - a will is published when the connection ends without DISCONNECT (or with MQTT 5 reason 0x04):
 *   at once, or, with a Will Delay Interval, at the earlier of the delay and the session's end;
 *   a resuming reconnect before then cancels it;
 * - time decides, not the broker's sweep: a CONNECT first does to the stored session what the
 *   sweep would have done by now (a session past its expiry has ended, its waiting will is
 *   published; a delayed will that is due is published), then connects.
 *
 * Every message the model drops is logged with the rule that dropped it (`drops`).
 *
 * The model never allocates packet ids: it takes the ids the implementation chose (from the
 * PUBLISH packets it sent) after the harness has checked that they are valid.
 */
import type { QoS } from "../../src/session/Message.ts"
import type { Limits } from "../../src/session/Transitions.ts"

/** The client ids the scenarios use. */
export const CLIENTS = ["a", "b", "c"] as const

/** The topics messages are published on. */
export const TOPICS = ["t/1", "t/2", "u/1"] as const

/** The topic filters clients subscribe to (exact names and wildcards). */
export const FILTERS = ["t/1", "t/2", "u/1", "t/+", "+/1", "+/+", "t/#", "#"] as const

/** Session Expiry Interval meaning "never" (0xFFFFFFFF). */
export const NEVER = 0xffffffff

/** The time the scenarios start at (epoch ms). */
export const START = 1_700_000_000_000

/**
 * Whether a topic filter matches a topic name, for the fixed sets above: `+` matches one level,
 * a final `#` matches the rest including the parent level.
 */
export const topicMatches = (filter: string, topic: string): boolean => {
  const f = filter.split("/")
  const t = topic.split("/")
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true
    if (i >= t.length) return false
    if (f[i] !== "+" && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

/** An application message as the model sees it (the payload as text). */
export interface MMessage {
  readonly topic: string
  readonly payload: string
  readonly qos: QoS
  readonly retain: boolean
  /** MQTT 5 message expiry (epoch ms); undefined: never. */
  readonly expiresAt: number | undefined
}

/** Whether a message has expired at `now`: its expiry time has come. */
export const expired = (m: MMessage, now: number): boolean => m.expiresAt !== undefined && m.expiresAt <= now

/**
 * The size of the MQTT 5 PUBLISH packet carrying `m` at its QoS, for the messages the scenarios
 * make (ASCII topic and payload, no property but a Message Expiry Interval), straight from the
 * packet layout: fixed header byte, Remaining Length, topic (2-byte length + bytes), packet id
 * (QoS > 0), property length (one byte here), the expiry property (identifier + 4 bytes), payload.
 */
export const packetSize = (m: MMessage): number => {
  const properties = m.expiresAt === undefined ? 0 : 1 + 4
  const remaining = 2 + m.topic.length + (m.qos > 0 ? 2 : 0) + 1 + properties + m.payload.length
  return 1 + (remaining < 128 ? 1 : 2) + remaining
}

/** Whether `m` is larger than a client with this Maximum Packet Size accepts. */
export const tooLarge = (m: MMessage, maximumPacketSize: number | undefined): boolean =>
  maximumPacketSize !== undefined && packetSize(m) > maximumPacketSize

export type Stage = "puback" | "pubrec" | "pubcomp"

/** A message pending for a session: in flight (`sent`, with its packet id) or queued. */
export interface MEntry {
  readonly message: MMessage
  sent: boolean
  stage: Stage
  packetId: number | undefined
  /**
   * In flight (with its packet id and stage), sent on an earlier connection and not yet on this
   * one: a smaller window on resume held it back. It does not use the window.
   */
  heldBack: boolean
}

export interface MSession {
  clean: boolean
  expiryInterval: number
  receiveMaximum: number
  maximumPacketSize: number | undefined
  readonly subscriptions: Map<string, QoS>
  /** In-flight entries (a prefix, in the order they were first sent), then the queue, oldest first. */
  pending: Array<MEntry>
  dropped: number
  /** Inbound QoS 2 packet ids received and not yet released by PUBREL, in arrival order. */
  awaitingPubrel: Array<number>
  /** The will of the live connection, or a delayed will waiting while offline. */
  will: MMessage | undefined
  willDelayInterval: number
  /** While offline: when the delayed will is due. */
  willAt: number | undefined
  disconnectedAt: number | undefined
}

/** What a CONNECT asks for (3.1.1 connects are mapped to these by the harness, as the broker does). */
export interface MConnect {
  readonly clean: boolean
  readonly expiryInterval: number
  readonly receiveMaximum: number
  readonly maximumPacketSize: number | undefined
  readonly will: MMessage | undefined
  readonly willDelayInterval: number
}

/** Why the model dropped a message. */
export type DropReason = "queue full" | "expired" | "too large"

/** A packet the model expects the implementation to send. `"new"`: a packet id the implementation picks. */
export type Expected =
  | {
    readonly _tag: "Publish"
    readonly message: MMessage
    readonly dup: boolean
    readonly packetId: number | "new" | undefined
    readonly entry: MEntry | undefined
  }
  | { readonly _tag: "Pubrel"; readonly packetId: number }

export const sameMessage = (a: MMessage, b: MMessage): boolean =>
  a.topic === b.topic && a.payload === b.payload && a.qos === b.qos && a.retain === b.retain && a.expiresAt === b.expiresAt

export const showMessage = (m: MMessage): string =>
  `${m.payload}@${m.topic} q${m.qos}${m.retain ? " retain" : ""}${m.expiresAt === undefined ? "" : ` exp@${m.expiresAt - START}`}`

export const showExpected = (e: Expected): string =>
  e._tag === "Pubrel"
    ? `PUBREL(${e.packetId})`
    : `PUBLISH(${showMessage(e.message)}, id=${String(e.packetId)}${e.dup ? ", dup" : ""})`

export const inflightOf = (s: MSession): Array<MEntry> => s.pending.filter((e) => e.sent)
export const queueOf = (s: MSession): Array<MEntry> => s.pending.filter((e) => !e.sent)
/** The in-flight messages a smaller window holds back, oldest first. */
export const heldBackOf = (s: MSession): Array<MEntry> => s.pending.filter((e) => e.sent && e.heldBack)
/** How much of the client's window is used: the in-flight messages sent on this connection. */
export const windowOf = (s: MSession): number => s.pending.filter((e) => e.sent && !e.heldBack).length

/** Whether a session survives the end of its connection (3.1.1 clean=0 maps to expiry > 0; MQTT 5 expiry > 0, whatever clean start said). */
export const isPersistent = (s: MSession): boolean => s.expiryInterval !== 0

/** When an offline session ends, if ever. */
export const endOf = (s: MSession): number | undefined =>
  s.disconnectedAt === undefined || s.expiryInterval === NEVER ? undefined : s.disconnectedAt + s.expiryInterval * 1000

/** The next time something is due for an offline session: its delayed will or its end, whichever is first. */
export const deadlineOf = (s: MSession): number | undefined => {
  const times = [endOf(s), s.willAt].filter((t): t is number => t !== undefined)
  return times.length === 0 ? undefined : Math.min(...times)
}

export class ReferenceModel {
  readonly sessions = new Map<string, MSession>()
  readonly online = new Set<string>()
  /** Every message dropped, with the rule that dropped it. */
  readonly drops: Array<{ readonly clientId: string; readonly message: MMessage; readonly reason: DropReason }> = []

  readonly limits: Limits

  constructor(limits: Limits) {
    this.limits = limits
  }

  private drop(clientId: string, message: MMessage, reason: DropReason): void {
    this.drops.push({ clientId, message, reason })
  }

  /**
   * CONNECT. The caller ends a live connection with the same id first (takeover). Time comes
   * first: a stored offline session is brought to `now` as the sweep would have (`passTime`).
   * `discarded` is the stored session that ended here (clean start, or past its expiry); `will`
   * is the will to publish now: a delayed will that was due, or the waiting will of the session
   * clean start ended.
   */
  connect(
    clientId: string,
    request: MConnect,
    now: number
  ): { sessionPresent: boolean; discarded: MSession | undefined; outgoing: Array<Expected>; will: MMessage | undefined } {
    let stored = this.sessions.get(clientId)
    let will: MMessage | undefined
    let ended: MSession | undefined
    if (stored !== undefined && stored.disconnectedAt !== undefined) {
      const passed = this.passTime(clientId, stored, now)
      will = passed.will
      if (passed.ended) {
        ended = stored
        stored = undefined
      }
    }
    this.online.add(clientId)
    if (request.clean || stored === undefined) {
      this.sessions.set(clientId, {
        clean: request.clean,
        expiryInterval: request.expiryInterval,
        receiveMaximum: request.receiveMaximum,
        maximumPacketSize: request.maximumPacketSize,
        subscriptions: new Map(),
        pending: [],
        dropped: 0,
        awaitingPubrel: [],
        will: request.will,
        willDelayInterval: request.willDelayInterval,
        willAt: undefined,
        disconnectedAt: undefined
      })
      // clean start ends the stored session: a delayed will still waiting in it is published now
      if (stored !== undefined && stored.willAt !== undefined) will = stored.will
      return { sessionPresent: false, discarded: stored ?? ended, outgoing: [], will }
    }
    stored.clean = request.clean
    stored.expiryInterval = request.expiryInterval
    stored.receiveMaximum = request.receiveMaximum
    stored.maximumPacketSize = request.maximumPacketSize
    // a reconnect before the delayed will was due cancels it; the new connection brings its own
    stored.will = request.will
    stored.willDelayInterval = request.willDelayInterval
    stored.willAt = undefined
    stored.disconnectedAt = undefined
    // The in-flight messages, in order, against the new window: PUBREL-stage ones are always sent
    // again (their PUBLISH was received) and use the window; a PUBLISH-stage one now too large for
    // the client is dropped (as if delivered); any other is sent again while the window has room
    // and held back (same packet id and stage, not sent, not using the window) once it is full.
    const kept: Array<MEntry> = []
    const outgoing: Array<Expected> = []
    let used = 0
    for (const entry of inflightOf(stored)) {
      if (entry.stage === "pubcomp") {
        entry.heldBack = false
        kept.push(entry)
        used++
        outgoing.push({ _tag: "Pubrel", packetId: entry.packetId! })
      } else if (tooLarge(entry.message, request.maximumPacketSize)) {
        this.drop(clientId, entry.message, "too large")
      } else if (used < request.receiveMaximum) {
        entry.heldBack = false
        kept.push(entry)
        used++
        outgoing.push({ _tag: "Publish", message: entry.message, dup: true, packetId: entry.packetId, entry })
      } else {
        entry.heldBack = true
        kept.push(entry)
      }
    }
    stored.pending = [...kept, ...queueOf(stored)]
    outgoing.push(...this.fill(clientId, stored, now))
    return { sessionPresent: true, discarded: ended, outgoing, will }
  }

  /**
   * The connection ended: DISCONNECT when `graceful` (MQTT 5 reason 0x04 is not graceful), which
   * in MQTT 5 may set a new session expiry. Returns the will to publish now.
   */
  disconnect(
    clientId: string,
    options: { readonly graceful: boolean; readonly expiryInterval: number | undefined },
    now: number
  ): { ended: boolean; will: MMessage | undefined } {
    this.online.delete(clientId)
    const session = this.sessions.get(clientId)
    if (session === undefined) return { ended: true, will: undefined }
    const will = options.graceful ? undefined : session.will
    if (options.expiryInterval !== undefined) session.expiryInterval = options.expiryInterval
    if (!isPersistent(session)) {
      // the session ends with the connection: a will, delayed or not, is published now
      this.sessions.delete(clientId)
      return { ended: true, will }
    }
    session.disconnectedAt = now
    if (will !== undefined && session.willDelayInterval > 0) {
      session.will = will
      session.willAt = now + session.willDelayInterval * 1000
      return { ended: false, will: undefined }
    }
    session.will = undefined
    session.willAt = undefined
    return { ended: false, will }
  }

  /** The broker's sweep: time passed for an offline session (see `passTime`). */
  expire(clientId: string, now: number): { ended: boolean; will: MMessage | undefined } {
    const session = this.sessions.get(clientId)
    if (session === undefined || this.online.has(clientId)) return { ended: false, will: undefined }
    return this.passTime(clientId, session, now)
  }

  /**
   * Time passed for an offline session: it ends once past its expiry (publishing a will still
   * waiting), or else its delayed will is published once due.
   */
  private passTime(clientId: string, session: MSession, now: number): { ended: boolean; will: MMessage | undefined } {
    const end = endOf(session)
    if (end !== undefined && end <= now) {
      this.sessions.delete(clientId)
      return { ended: true, will: session.willAt !== undefined ? session.will : undefined }
    }
    if (session.willAt !== undefined && session.willAt <= now) {
      const will = session.will
      session.will = undefined
      session.willAt = undefined
      return { ended: false, will }
    }
    return { ended: false, will: undefined }
  }

  subscribe(clientId: string, filter: string, qos: QoS): void {
    this.sessions.get(clientId)?.subscriptions.set(filter, qos)
  }

  unsubscribe(clientId: string, filter: string): boolean {
    const session = this.sessions.get(clientId)
    return session !== undefined && session.subscriptions.delete(filter)
  }

  /** A message routed to the client at its delivery QoS. */
  deliver(clientId: string, message: MMessage, online: boolean, now: number): Array<Expected> {
    const session = this.sessions.get(clientId)
    if (session === undefined) return []
    if (expired(message, now)) {
      this.drop(clientId, message, "expired")
      return []
    }
    if (tooLarge(message, session.maximumPacketSize)) {
      this.drop(clientId, message, "too large")
      return []
    }
    if (message.qos === 0) {
      if (online) return [{ _tag: "Publish", message, dup: false, packetId: undefined, entry: undefined }]
      if (this.limits.queueQos0) this.enqueue(clientId, session, message)
      return []
    }
    // (nothing queued and nothing held back: order is kept)
    if (online && queueOf(session).length === 0 && heldBackOf(session).length === 0 && windowOf(session) < session.receiveMaximum) {
      const entry: MEntry = { message, sent: true, stage: message.qos === 2 ? "pubrec" : "puback", packetId: undefined, heldBack: false }
      session.pending.push(entry)
      return [{ _tag: "Publish", message, dup: false, packetId: "new", entry }]
    }
    this.enqueue(clientId, session, message)
    return []
  }

  puback(clientId: string, packetId: number, now: number): Array<Expected> {
    return this.release(clientId, packetId, "puback", now)
  }

  pubrec(clientId: string, packetId: number): Array<Expected> {
    const session = this.sessions.get(clientId)
    if (session === undefined) return []
    const entry = this.find(session, packetId, "pubrec")
    if (entry !== undefined) {
      // (a held-back one too: the client has its PUBLISH, so it is never sent as a PUBLISH again)
      entry.stage = "pubcomp"
      entry.heldBack = false
      return [{ _tag: "Pubrel", packetId }]
    }
    return this.find(session, packetId, "pubcomp") !== undefined ? [{ _tag: "Pubrel", packetId }] : []
  }

  pubcomp(clientId: string, packetId: number, now: number): Array<Expected> {
    return this.release(clientId, packetId, "pubcomp", now)
  }

  /** An inbound QoS 2 PUBLISH: whether it is to be forwarded. */
  receiveQos2(clientId: string, packetId: number): boolean {
    const session = this.sessions.get(clientId)
    if (session === undefined || session.awaitingPubrel.includes(packetId)) return false
    session.awaitingPubrel.push(packetId)
    return true
  }

  pubrel(clientId: string, packetId: number): void {
    const session = this.sessions.get(clientId)
    if (session !== undefined) session.awaitingPubrel = session.awaitingPubrel.filter((id) => id !== packetId)
  }

  private find(session: MSession, packetId: number, stage: Stage): MEntry | undefined {
    return session.pending.find((e) => e.sent && e.packetId === packetId && e.stage === stage)
  }

  private release(clientId: string, packetId: number, stage: Stage, now: number): Array<Expected> {
    const session = this.sessions.get(clientId)
    if (session === undefined) return []
    const entry = this.find(session, packetId, stage)
    if (entry === undefined) return []
    session.pending = session.pending.filter((e) => e !== entry)
    return this.fill(clientId, session, now)
  }

  /** Appends to the queue; when it is full the oldest queued message is dropped and counted. */
  private enqueue(clientId: string, session: MSession, message: MMessage): void {
    if (this.limits.maxQueuedMessages <= 0) {
      session.dropped++
      this.drop(clientId, message, "queue full")
      return
    }
    while (queueOf(session).length >= this.limits.maxQueuedMessages) {
      const oldest = queueOf(session)[0]!
      session.pending = session.pending.filter((e) => e !== oldest)
      session.dropped++
      this.drop(clientId, oldest.message, "queue full")
    }
    session.pending.push({ message, sent: false, stage: "puback", packetId: undefined, heldBack: false })
  }

  /**
   * Fills the window while the client is online: first the held-back in-flight messages, oldest
   * first, re-sent with DUP=1 and their packet ids; once none is held back, the queued messages,
   * oldest first: an expired or too large one is dropped, QoS 0 is sent at once, QoS 1/2 with a
   * new packet id. Each re-sent or newly sent QoS 1/2 message needs room in the window.
   */
  private fill(clientId: string, session: MSession, now: number): Array<Expected> {
    const outgoing: Array<Expected> = []
    for (const entry of heldBackOf(session)) {
      if (windowOf(session) >= session.receiveMaximum) return outgoing
      entry.heldBack = false
      outgoing.push({ _tag: "Publish", message: entry.message, dup: true, packetId: entry.packetId, entry })
    }
    for (;;) {
      const head = queueOf(session)[0]
      if (head === undefined) break
      const reason: DropReason | undefined = expired(head.message, now)
        ? "expired"
        : tooLarge(head.message, session.maximumPacketSize)
        ? "too large"
        : undefined
      if (reason !== undefined || head.message.qos === 0) {
        session.pending = session.pending.filter((e) => e !== head)
        if (reason !== undefined) this.drop(clientId, head.message, reason)
        else outgoing.push({ _tag: "Publish", message: head.message, dup: false, packetId: undefined, entry: undefined })
        continue
      }
      if (windowOf(session) >= session.receiveMaximum) break
      // The in-flight entries stay a prefix: the head of the queue directly follows them.
      head.sent = true
      head.stage = head.message.qos === 2 ? "pubrec" : "puback"
      outgoing.push({ _tag: "Publish", message: head.message, dup: false, packetId: "new", entry: head })
    }
    return outgoing
  }
}
