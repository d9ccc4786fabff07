/**
 * The reference model of MQTT session semantics the property suite checks the implementation
 * against. It is written the plain way on purpose (mutable Maps and arrays, one small function
 * per protocol event) so that it can be read against the MQTT 3.1.1 text:
 *
 * - a session's pending messages are one FIFO list: the ones already sent (in flight, holding a
 *   packet id) form a prefix, the ones waiting (the queue) the rest;
 * - at most `receiveMaximum` messages are in flight; the queue holds at most `maxQueuedMessages`
 *   and drops its oldest message when full, counting it;
 * - an acknowledgement releases the matching in-flight message and refills the window from the
 *   queue, oldest first;
 * - on resume every in-flight message is sent again (PUBLISH with DUP=1, or PUBREL once PUBREC
 *   was received), then the queue drains into the window.
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
}

export type Stage = "puback" | "pubrec" | "pubcomp"

/** A message pending for a session: in flight (`sent`, with its packet id) or queued. */
export interface MEntry {
  readonly message: MMessage
  sent: boolean
  stage: Stage
  packetId: number | undefined
}

export interface MSession {
  clean: boolean
  expiryInterval: number
  receiveMaximum: number
  readonly subscriptions: Map<string, QoS>
  /** In-flight entries (a prefix, in the order they were first sent), then the queue, oldest first. */
  pending: Array<MEntry>
  dropped: number
  /** Inbound QoS 2 packet ids received and not yet released by PUBREL, in arrival order. */
  awaitingPubrel: Array<number>
  will: MMessage | undefined
  disconnectedAt: number | undefined
}

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
  a.topic === b.topic && a.payload === b.payload && a.qos === b.qos && a.retain === b.retain

export const showMessage = (m: MMessage): string => `${m.payload}@${m.topic} q${m.qos}${m.retain ? " retain" : ""}`

export const showExpected = (e: Expected): string =>
  e._tag === "Pubrel"
    ? `PUBREL(${e.packetId})`
    : `PUBLISH(${showMessage(e.message)}, id=${String(e.packetId)}${e.dup ? ", dup" : ""})`

export const inflightOf = (s: MSession): Array<MEntry> => s.pending.filter((e) => e.sent)
export const queueOf = (s: MSession): Array<MEntry> => s.pending.filter((e) => !e.sent)

/** Whether a session survives the end of its connection (3.1.1 clean=0 maps to expiry > 0; MQTT 5 expiry > 0, whatever clean start said). */
export const isPersistent = (s: MSession): boolean => s.expiryInterval !== 0

export class ReferenceModel {
  readonly sessions = new Map<string, MSession>()
  readonly online = new Set<string>()

  readonly limits: Limits

  constructor(limits: Limits) {
    this.limits = limits
  }

  /** CONNECT. The caller ends a live connection with the same id first (takeover). */
  connect(
    clientId: string,
    request: { clean: boolean; expiryInterval: number; receiveMaximum: number; will: MMessage | undefined }
  ): { sessionPresent: boolean; discarded: MSession | undefined; outgoing: Array<Expected> } {
    const stored = this.sessions.get(clientId)
    this.online.add(clientId)
    if (request.clean || stored === undefined) {
      this.sessions.set(clientId, {
        clean: request.clean,
        expiryInterval: request.expiryInterval,
        receiveMaximum: request.receiveMaximum,
        subscriptions: new Map(),
        pending: [],
        dropped: 0,
        awaitingPubrel: [],
        will: request.will,
        disconnectedAt: undefined
      })
      return { sessionPresent: false, discarded: stored, outgoing: [] }
    }
    stored.clean = request.clean
    stored.expiryInterval = request.expiryInterval
    stored.receiveMaximum = request.receiveMaximum
    stored.will = request.will
    stored.disconnectedAt = undefined
    const outgoing: Array<Expected> = []
    for (const entry of inflightOf(stored)) {
      outgoing.push(
        entry.stage === "pubcomp"
          ? { _tag: "Pubrel", packetId: entry.packetId! }
          : { _tag: "Publish", message: entry.message, dup: true, packetId: entry.packetId, entry }
      )
    }
    outgoing.push(...this.fill(stored))
    return { sessionPresent: true, discarded: undefined, outgoing }
  }

  /** The connection ended (DISCONNECT when `graceful`). */
  disconnect(clientId: string, graceful: boolean, now: number): { ended: boolean; will: MMessage | undefined } {
    this.online.delete(clientId)
    const session = this.sessions.get(clientId)
    if (session === undefined) return { ended: true, will: undefined }
    const will = graceful ? undefined : session.will
    if (!isPersistent(session)) {
      this.sessions.delete(clientId)
      return { ended: true, will }
    }
    session.will = undefined
    session.disconnectedAt = now
    return { ended: false, will }
  }

  subscribe(clientId: string, filter: string, qos: QoS): void {
    this.sessions.get(clientId)?.subscriptions.set(filter, qos)
  }

  unsubscribe(clientId: string, filter: string): void {
    this.sessions.get(clientId)?.subscriptions.delete(filter)
  }

  /** A message routed to the client at its delivery QoS. */
  deliver(clientId: string, message: MMessage, online: boolean): Array<Expected> {
    const session = this.sessions.get(clientId)
    if (session === undefined) return []
    if (message.qos === 0) {
      if (online) return [{ _tag: "Publish", message, dup: false, packetId: undefined, entry: undefined }]
      if (this.limits.queueQos0) this.enqueue(session, message)
      return []
    }
    if (online && queueOf(session).length === 0 && inflightOf(session).length < session.receiveMaximum) {
      const entry: MEntry = { message, sent: true, stage: message.qos === 2 ? "pubrec" : "puback", packetId: undefined }
      session.pending.push(entry)
      return [{ _tag: "Publish", message, dup: false, packetId: "new", entry }]
    }
    this.enqueue(session, message)
    return []
  }

  puback(clientId: string, packetId: number): Array<Expected> {
    return this.release(clientId, packetId, "puback")
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

  pubcomp(clientId: string, packetId: number): Array<Expected> {
    return this.release(clientId, packetId, "pubcomp")
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

  private release(clientId: string, packetId: number, stage: Stage): Array<Expected> {
    const session = this.sessions.get(clientId)
    if (session === undefined) return []
    const entry = this.find(session, packetId, stage)
    if (entry === undefined) return []
    session.pending = session.pending.filter((e) => e !== entry)
    return this.fill(session)
  }

  /** Appends to the queue; when it is full the oldest queued message is dropped and counted. */
  private enqueue(session: MSession, message: MMessage): void {
    if (this.limits.maxQueuedMessages <= 0) {
      session.dropped++
      return
    }
    while (queueOf(session).length >= this.limits.maxQueuedMessages) {
      const oldest = queueOf(session)[0]!
      session.pending = session.pending.filter((e) => e !== oldest)
      session.dropped++
    }
    session.pending.push({ message, sent: false, stage: "puback", packetId: undefined })
  }

  /** Sends queued messages, oldest first: QoS 0 at once, QoS 1/2 while the window has room. */
  private fill(session: MSession): Array<Expected> {
    const outgoing: Array<Expected> = []
    for (;;) {
      const head = queueOf(session)[0]
      if (head === undefined) break
      if (head.message.qos === 0) {
        session.pending = session.pending.filter((e) => e !== head)
        outgoing.push({ _tag: "Publish", message: head.message, dup: false, packetId: undefined, entry: undefined })
        continue
      }
      if (inflightOf(session).length >= session.receiveMaximum) break
      // The in-flight entries stay a prefix: the head of the queue directly follows them.
      head.sent = true
      head.stage = head.message.qos === 2 ? "pubrec" : "puback"
      outgoing.push({ _tag: "Publish", message: head.message, dup: false, packetId: "new", entry: head })
    }
    return outgoing
  }
}
