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
 * - at most `receiveMaximum` messages are in flight; the queue holds at most `maxQueuedMessages`
 *   and drops its oldest message when full, counting it;
 * - an acknowledgement releases the matching in-flight message and refills the window from the
 *   queue, oldest first; a queued message that has expired, or is larger than the client's
 *   Maximum Packet Size, is dropped when the window reaches it (and never sent);
 * - on resume every in-flight message is sent again (PUBLISH with DUP=1, or PUBREL once PUBREC
 *   was received), except that a smaller window moves the newest PUBLISH-stage ones back to the
 *   head of the queue and a message now too large for the client is dropped; then the queue
 *   drains into the window;
 * - a will is published when the connection ends without DISCONNECT (or with MQTT 5 reason 0x04):
 *   at once, or, with a Will Delay Interval, at the earlier of the delay and the session's end;
 *   a resuming reconnect before then cancels it.
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
  /** Moved back from flight to the queue by a smaller window on resume (and not sent since). */
  returned: boolean
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
   * CONNECT. The caller ends a live connection with the same id first (takeover). `will` is the
   * discarded session's delayed will, published now because clean start ended that session.
   */
  connect(
    clientId: string,
    request: MConnect,
    now: number
  ): { sessionPresent: boolean; discarded: MSession | undefined; outgoing: Array<Expected>; will: MMessage | undefined } {
    const stored = this.sessions.get(clientId)
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
      const will = stored !== undefined && stored.willAt !== undefined ? stored.will : undefined
      return { sessionPresent: false, discarded: stored, outgoing: [], will }
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
    // The in-flight messages, in order: one now too large for the client is dropped (as if
    // delivered); a PUBLISH-stage one is kept while fewer than receiveMaximum entries (of any
    // stage, counted in order) are kept before it, and otherwise moved back to the queue head.
    // PUBREL-stage entries are always kept: their PUBLISH was received already.
    const kept: Array<MEntry> = []
    const movedBack: Array<MEntry> = []
    for (const entry of inflightOf(stored)) {
      if (entry.stage !== "pubcomp" && tooLarge(entry.message, request.maximumPacketSize)) {
        this.drop(clientId, entry.message, "too large")
      } else if (entry.stage !== "pubcomp" && kept.length >= request.receiveMaximum) {
        entry.sent = false
        entry.packetId = undefined
        entry.stage = "puback"
        entry.returned = true
        movedBack.push(entry)
      } else {
        kept.push(entry)
      }
    }
    stored.pending = [...kept, ...movedBack, ...queueOf(stored).filter((e) => !movedBack.includes(e))]
    const outgoing: Array<Expected> = []
    for (const entry of kept) {
      outgoing.push(
        entry.stage === "pubcomp"
          ? { _tag: "Pubrel", packetId: entry.packetId! }
          : { _tag: "Publish", message: entry.message, dup: true, packetId: entry.packetId, entry }
      )
    }
    outgoing.push(...this.fill(clientId, stored, now))
    return { sessionPresent: true, discarded: undefined, outgoing, will: undefined }
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

  /** Time passed for an offline session: it ends past its expiry (publishing a waiting will), or its due will is published. */
  expire(clientId: string, now: number): { ended: boolean; will: MMessage | undefined } {
    const session = this.sessions.get(clientId)
    if (session === undefined || this.online.has(clientId)) return { ended: false, will: undefined }
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
    if (online && queueOf(session).length === 0 && inflightOf(session).length < session.receiveMaximum) {
      const entry: MEntry = { message, sent: true, stage: message.qos === 2 ? "pubrec" : "puback", packetId: undefined, returned: false }
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
      entry.stage = "pubcomp"
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
    session.pending.push({ message, sent: false, stage: "puback", packetId: undefined, returned: false })
  }

  /**
   * Sends queued messages, oldest first, while the client is online: an expired or too large one
   * is dropped, QoS 0 is sent at once, QoS 1/2 while the window has room.
   */
  private fill(clientId: string, session: MSession, now: number): Array<Expected> {
    const outgoing: Array<Expected> = []
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
      if (inflightOf(session).length >= session.receiveMaximum) break
      // The in-flight entries stay a prefix: the head of the queue directly follows them.
      head.sent = true
      head.returned = false
      head.stage = head.message.qos === 2 ? "pubrec" : "puback"
      outgoing.push({ _tag: "Publish", message: head.message, dup: false, packetId: "new", entry: head })
    }
    return outgoing
  }
}
