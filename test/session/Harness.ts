/**
 * Replays a scenario against the `Sessions` service over a provider Layer, playing the broker
 * (a tiny router with retained messages, connection bookkeeping, takeover, the MQTT 3.1.1 → session
 * mapping of CONNECT, will publication, the expiry sweep) and the clients (acknowledging, sending
 * QoS 2, receiving QoS 2 the way the protocol says a receiver must), and after every step checks
 * the named invariants and that the implementation agrees with the reference model.
 *
 * Time is the scenario's: `Sessions` reads it from Effect's `Clock`, which the replay provides, and
 * only `Tick` commands move it (most then run the broker's expiry sweep; some do not, so that a
 * CONNECT can come after a deadline but before the sweep).
 *
 * The clients are conformant MQTT 5 receivers and keep their QoS 2 receiver state across
 * reconnects of a session: a PUBLISH they received on an earlier connection is held (its packet id
 * until PUBREL) whatever the broker does on resume.
 *
 * A failed check throws an `InvariantViolation` whose message starts with the check's name and
 * ends with the step (index and command) it failed at.
 */
import { Clock, Effect, Layer, Option } from "effect"
import { isDeepStrictEqual } from "node:util"
import { type Message, minQos, type QoS } from "../../src/session/Message.ts"
import { type ConnectRequest, type InflightMessage, nextDeadline, type SessionState } from "../../src/session/SessionState.ts"
import { SessionStateProvider, type SessionStoreError } from "../../src/session/SessionStateProvider.ts"
import * as Sessions from "../../src/session/Sessions.ts"
import * as Transitions from "../../src/session/Transitions.ts"
import { type Command, type ConnectSpec, type Scenario, showCommand } from "./Commands.ts"
import {
  CLIENTS,
  deadlineOf,
  endOf,
  type Expected,
  expired,
  inflightOf,
  type MConnect,
  type MMessage,
  type MSession,
  packetSize,
  queueOf,
  ReferenceModel,
  sameMessage,
  showExpected,
  showMessage,
  type Stage,
  START,
  tooLarge,
  topicMatches
} from "./Model.ts"
import {
  normalizeOutgoing,
  normalizeState,
  showOutgoing,
  showOutgoingList,
  showState,
  toMessage,
  toModelMessage
} from "./Normalize.ts"

/** The named checks; a failure message starts with `[name]`. */
export const Check = {
  sessionPresent:
    "1 sessionPresent is 1 exactly when clean start is 0 and a session was stored whose expiry had not passed (whether the sweep had run or not)",
  sessionEnds:
    "2 a session is gone once it ends (expiry 0 when its connection ends, or its expiry interval passed offline) and kept while within its expiry",
  noLoss:
    "3 no QoS 1/2 message leaves a session unless acknowledged or dropped by a stated rule: queue full (counted), expired while queued, too large for the client, session ended",
  dupOnResume:
    "3 on resume the in-flight messages are resent first, in order, with their packet ids (PUBLISH with DUP=1; PUBREL past PUBREC) while the new window has room; " +
    "the rest stay in flight with their ids and are resent (DUP=1, same id, oldest first) as the window opens, before any new message; " +
    "one now too large for the client is dropped; a message past PUBREC is never sent as a PUBLISH again",
  qos2Once: "4 an inbound QoS 2 message is forwarded exactly once per PUBLISH…PUBREL exchange",
  qos2ToClient:
    "4 an outbound QoS 2 message reaches the client application at most once, and no packet id the client still holds (PUBLISH received, PUBREL not yet) is given to another message",
  packetIds: "5 packet ids in flight are unique, within 1..65535, and reused only after release",
  window:
    "6 a QoS 1/2 PUBLISH (new, or a held-back one resent) is sent only while fewer than receiveMaximum messages sent on this connection are in flight " +
    "(PUBREL-stage ones included, held-back ones not); unacknowledged PUBLISHes sent on this connection ≤ receiveMaximum",
  queueBound: "6 queue ≤ maxQueuedMessages; when full the oldest is dropped and counted",
  noStall: "6 an online session holds no queued or held-back message while its window has room",
  order: "7 QoS ≥ 1 messages on one topic reach a subscriber in publish order",
  writeThrough: "8 the stored session equals the pure transition applied to the previously stored one",
  will:
    "9 a delayed will is published exactly once, at the earlier of its delay and the session's end (by the sweep, or by a CONNECT that comes first), " +
    "and never if the client resumed the session before it was due",
  expiredNeverSent: "10 an expired message is never sent (a DUP resend of one already in flight excepted: its delivery has started)",
  tooLargeNeverSent: "10 no PUBLISH larger than the client's Maximum Packet Size is sent to it",
  model: "the implementation agrees with the reference model"
} as const

export type CheckName = (typeof Check)[keyof typeof Check]

export class InvariantViolation extends Error {
  override readonly name = "InvariantViolation"
  readonly check: CheckName
  constructor(check: CheckName, detail: string, where: string) {
    super(`[${check}] ${detail}\n    at ${where}`)
    this.check = check
  }
}

/** How a scenario is replayed. */
export interface ReplayOptions {
  /** Counts the situations the scenario reached (for measuring what the generators cover). */
  readonly stats?: Map<string, number> | undefined
  /**
   * Clients may also acknowledge a message a smaller window held back on resume: one they received
   * on an earlier connection and have not been sent again on this one (a client that queued its
   * PUBACK or PUBREC across the reconnect does that; MQTT-4.4.0-1 only has PUBLISH and PUBREL
   * resent). On by default; `false` has clients acknowledge only what they were sent on this
   * connection. Only the right acknowledgement for a held-back message's stage settles what the
   * broker owes the client; a wrong one (PUBACK for QoS 2, PUBREC for QoS 1) is ignored and the
   * message is still re-sent (DUP=1, same id) as the window opens.
   */
  readonly acknowledgeHeldBack?: boolean | undefined
}

/** What a client remembers between packets. */
interface ClientView {
  /** Its open outbound QoS 2 exchanges: packet id → message and how often the broker forwarded it. */
  readonly exchanges: Map<number, { readonly message: MMessage; forwards: number }>
  /** Payloads of QoS ≥ 1 live messages it has received (to tell first deliveries from resends). */
  readonly seen: Set<string>
  /** Per topic, the publish index and payload of the last first-time QoS ≥ 1 live delivery. */
  readonly last: Map<string, { readonly index: number; readonly payload: string }>
  /** Its QoS 2 receiver state: packet id → payload of a PUBLISH received whose PUBREL has not come. */
  readonly holding: Map<number, string>
  /** Payloads of live QoS 2 messages handed to its application. */
  readonly delivered: Set<string>
  /**
   * The messages a smaller window held back on resume of this connection, oldest first, with the
   * packet ids they hold: each is owed to the client as a DUP resend with that id before anything new.
   */
  owed: Array<{ readonly packetId: number; readonly message: MMessage }>
}

/** The live connection of a client, as the broker knows it. */
interface Connection {
  readonly version: 4 | 5
  /** The Session Expiry Interval of its CONNECT (a DISCONNECT may not raise it from 0). */
  readonly expiryInterval: number
  readonly maximumPacketSize: number | undefined
}

/** What may make messages leave a session in one operation, besides the drop rules. */
interface Accounting {
  /** The acknowledgement that releases an in-flight message. */
  readonly released?: { readonly packetId: number; readonly stage: Stage } | undefined
  /** The operation may end the session (its messages end with it). */
  readonly mayEnd?: boolean | undefined
  /** Clean start: the stored session is replaced by a new one. */
  readonly replaced?: boolean | undefined
}

const ackFor = (stage: Stage): "puback" | "pubrec" | "pubcomp" => (stage === "puback" ? "puback" : stage)

const byFilter = <T>(entries: Array<readonly [string, T]>) => entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

const modelView = (m: MSession) => ({
  clean: m.clean,
  expiryInterval: m.expiryInterval,
  subscriptions: byFilter([...m.subscriptions].map(([filter, qos]) => [filter, { qos }] as const)),
  inflight: inflightOf(m).map((e) => ({ packetId: e.packetId, stage: e.stage, message: e.message, heldBack: e.heldBack })),
  queue: queueOf(m).map((e) => e.message),
  dropped: m.dropped,
  awaitingPubrel: [...m.awaitingPubrel],
  will: m.will ?? null,
  willDelayInterval: m.willDelayInterval,
  willAt: m.willAt ?? null,
  receiveMaximum: m.receiveMaximum,
  maximumPacketSize: m.maximumPacketSize ?? null,
  disconnectedAt: m.disconnectedAt ?? null,
  deadline: deadlineOf(m) ?? null
})

const implementationView = (s: SessionState) => ({
  clean: s.clean,
  expiryInterval: s.expiryInterval,
  subscriptions: byFilter([...s.subscriptions].map(([filter, sub]) => [filter, { qos: sub.qos }] as const)),
  inflight: s.inflight.map((e) => ({
    packetId: e.packetId,
    stage: e.stage,
    message: toModelMessage(e.message),
    heldBack: e.awaitingResend === true
  })),
  queue: s.queue.toArray().map(toModelMessage),
  dropped: s.dropped,
  awaitingPubrel: [...s.awaitingPubrel],
  will: s.will === undefined ? null : toModelMessage(s.will),
  willDelayInterval: s.willDelayInterval,
  willAt: s.willAt ?? null,
  receiveMaximum: s.receiveMaximum,
  maximumPacketSize: s.maximumPacketSize ?? null,
  disconnectedAt: s.disconnectedAt ?? null,
  deadline: nextDeadline(s) ?? null
})

const json = (value: unknown): string => JSON.stringify(value)

/** How much of the client's window a stored session uses: in-flight entries sent on this connection (counted here, not by the implementation). */
const windowUsed = (s: SessionState): number => s.inflight.filter((e) => e.awaitingResend !== true).length

/** The in-flight entries a smaller window holds back. */
const heldBackIn = (s: SessionState) => s.inflight.filter((e) => e.awaitingResend === true)

const showTime = (t: number | undefined): string => (t === undefined ? "never" : `t+${t - START}ms`)

/** A clock that reads the scenario's time. */
const scenarioClock = (time: { readonly now: number }): Clock.Clock => ({
  currentTimeMillisUnsafe: () => time.now,
  currentTimeMillis: Effect.sync(() => time.now),
  currentTimeNanosUnsafe: () => BigInt(time.now) * 1_000_000n,
  currentTimeNanos: Effect.sync(() => BigInt(time.now) * 1_000_000n),
  monotonicTimeNanosUnsafe: () => BigInt(time.now) * 1_000_000n,
  monotonicTimeNanos: Effect.sync(() => BigInt(time.now) * 1_000_000n),
  sleep: () => Effect.void
})

/** Replays a scenario; needs `Sessions` (built with the scenario's limits) and the provider. */
export const replay = (scenario: Scenario, options: ReplayOptions = {}) =>
  Effect.suspend(() => {
    const time = { now: START }
    return replayAt(scenario, options, time).pipe(Effect.provideService(Clock.Clock, scenarioClock(time)))
  })

const replayAt = Effect.fnUntraced(function*(scenario: Scenario, options: ReplayOptions, time: { now: number }) {
  const sessions = yield* Sessions.Sessions
  const provider = yield* SessionStateProvider
  const limits: Transitions.Limits = { maxQueuedMessages: scenario.maxQueuedMessages, queueQos0: scenario.queueQos0 }
  const acknowledgeHeldBack = options.acknowledgeHeldBack !== false
  const model = new ReferenceModel(limits)
  const views = new Map<string, ClientView>()
  const resetView = (id: string) =>
    views.set(id, {
      exchanges: new Map(),
      seen: views.get(id)?.seen ?? new Set(),
      last: new Map(),
      holding: new Map(),
      delivered: views.get(id)?.delivered ?? new Set(),
      owed: []
    })
  for (const id of CLIENTS) resetView(id)
  const view = (id: string): ClientView => views.get(id)!
  const connections = new Map<string, Connection>()
  const retained = new Map<string, MMessage>()
  const publishIndex = new Map<string, number>()
  /** Wills published so far, and wills a resuming reconnect cancelled (by payload). */
  const publishedWills = new Set<string>()
  const cancelledWills = new Set<string>()
  let counter = 0
  let where = "setup"

  const note = (label: string) => {
    if (options.stats !== undefined) options.stats.set(label, (options.stats.get(label) ?? 0) + 1)
  }

  const fail = (check: CheckName, detail: string): never => {
    throw new InvariantViolation(check, detail, `${where} (at ${showTime(time.now)})`)
  }

  const get = (id: string) => Effect.map(provider.get(id), Option.getOrUndefined)

  /** The operations on an existing session: without one, nothing changes and `absent` is the result. */
  const onSession = <A>(
    absent: A,
    pure: (before: SessionState) => { readonly result: A; readonly after: SessionState | undefined }
  ) =>
  (before: SessionState | undefined) => before === undefined ? { result: absent, after: undefined } : pure(before)

  /**
   * Runs one `Sessions` operation and checks write-through: the stored session afterwards must be
   * the pure transition applied to the session stored before, and the result the transition's.
   * Then what every stored session must keep, and that no message left it unaccounted for.
   */
  const through = <A>(
    id: string,
    operation: string,
    run: Effect.Effect<A, SessionStoreError>,
    pure: (before: SessionState | undefined) => { readonly result: A; readonly after: SessionState | undefined },
    normalize: (a: A) => unknown,
    accounting: Accounting = {}
  ) =>
    Effect.gen(function*() {
      const before = yield* get(id)
      const expected = pure(before)
      const result = yield* run
      const after = yield* get(id)
      if (!isDeepStrictEqual(normalizeState(after), normalizeState(expected.after))) {
        fail(
          Check.writeThrough,
          `after ${operation} the provider holds\n      ${showState(after)}\n    but the transition applied to\n      ${
            showState(before)
          }\n    gives\n      ${showState(expected.after)}`
        )
      }
      if (!isDeepStrictEqual(normalize(result), normalize(expected.result))) {
        fail(
          Check.writeThrough,
          `${operation} returned ${json(normalize(result))} but the transition gives ${json(normalize(expected.result))}`
        )
      }
      if (after !== undefined) {
        checkBounds(id, after)
        checkStoredOrder(id, after)
        checkStall(id, after)
      }
      checkAccounted(id, operation, before, after, accounting)
      return { result, before, after }
    })

  /** [5] [6] what must hold of any stored session, whatever the model says. */
  const checkBounds = (id: string, stored: SessionState) => {
    const ids = stored.inflight.map((e) => e.packetId)
    for (const pid of ids) {
      if (!Number.isInteger(pid) || pid < 1 || pid > 65535) fail(Check.packetIds, `${id} has packet id ${pid} in flight`)
    }
    if (new Set(ids).size !== ids.length) fail(Check.packetIds, `${id} has duplicate packet ids in flight: ${ids.join(" ")}`)
    // (held back ones were sent on an earlier connection and are not resent yet: they do not use the window)
    const publishing = stored.inflight.filter((e) => e.stage !== "pubcomp" && e.awaitingResend !== true).length
    if (publishing > stored.receiveMaximum) {
      fail(Check.window, `${id} has ${publishing} unacknowledged PUBLISHes in flight, receiveMaximum is ${stored.receiveMaximum}: ${showState(stored)}`)
    }
    const pastPubrec = stored.inflight.find((e) => e.stage === "pubcomp" && e.awaitingResend === true)
    if (pastPubrec !== undefined) {
      fail(Check.dupOnResume, `${id} holds ${pastPubrec.packetId} back for a PUBLISH resend though it is past PUBREC (PUBREL sent): ${showState(stored)}`)
    }
  }

  /** [6] an online session (as the implementation sees it) with room in its window holds nothing back and queues nothing it could send. */
  const checkStall = (id: string, stored: SessionState) => {
    if (!connections.has(id) || stored.disconnectedAt !== undefined || windowUsed(stored) >= stored.receiveMaximum) return
    const held = heldBackIn(stored)
    // (with room in the window even a queued QoS 0 message goes out: it only waits behind a full one)
    if (held.length > 0 || stored.queue.length > 0) {
      fail(
        Check.noStall,
        `${id} is online with ${windowUsed(stored)}/${stored.receiveMaximum} of its window used, ${held.length} held back and ${stored.queue.length} queued: ${
          showState(stored)
        }`
      )
    }
  }

  /**
   * [7] a session holds its live QoS ≥ 1 messages of one topic (in flight, held back or not, then
   * queued) in publish order.
   */
  const checkStoredOrder = (id: string, stored: SessionState) => {
    const last = new Map<string, { readonly index: number; readonly payload: string }>()
    const held = [...stored.inflight.map((e) => e.message), ...stored.queue]
    for (const message of held) {
      if (message.qos === 0 || message.retain) continue
      const m = toModelMessage(message)
      const index = publishIndex.get(m.payload)
      if (index === undefined) continue
      const before = last.get(m.topic)
      if (before !== undefined && index <= before.index) {
        fail(Check.order, `${id} holds ${m.payload} after ${before.payload} on ${m.topic}: ${showState(stored)}`)
      }
      last.set(m.topic, { index, payload: m.payload })
    }
  }

  /**
   * [3] every QoS 1/2 message that left the session in this operation is accounted for: it was
   * acknowledged, or dropped by a stated rule (checked on the stored sessions, not the model).
   */
  const checkAccounted = (
    id: string,
    operation: string,
    before: SessionState | undefined,
    after: SessionState | undefined,
    accounting: Accounting
  ) => {
    if (before === undefined) return
    if (after === undefined) {
      if (accounting.mayEnd === true) return
      return fail(Check.noLoss, `the session of ${id} vanished on ${operation}: ${showState(before)}`)
    }
    if (accounting.replaced === true) return
    const keyOf = (m: MMessage) => `${m.payload}|${m.retain}|${m.qos}`
    const count = (messages: ReadonlyArray<Message>) => {
      const counts = new Map<string, number>()
      for (const message of messages) {
        if (message.qos === 0) continue
        const key = keyOf(toModelMessage(message))
        counts.set(key, (counts.get(key) ?? 0) + 1)
      }
      return counts
    }
    const inflightBefore = before.inflight.map((e) => e.message)
    const queuedBefore = count(before.queue.toArray())
    const held = count([...inflightBefore, ...before.queue.toArray()])
    const kept = count([...after.inflight.map((e) => e.message), ...after.queue.toArray()])
    let released = accounting.released === undefined
      ? undefined
      : before.inflight.find((e) => e.packetId === accounting.released!.packetId && e.stage === accounting.released!.stage)
    let queueFull = after.dropped - before.dropped
    const messages = new Map([...inflightBefore, ...before.queue.toArray()].map((m) => [keyOf(toModelMessage(m)), toModelMessage(m)]))
    for (const [key, count] of held) {
      const m = messages.get(key)!
      const wasQueued = (queuedBefore.get(key) ?? 0) > 0
      for (let missing = count - (kept.get(key) ?? 0); missing > 0; missing--) {
        if (released !== undefined && keyOf(toModelMessage(released.message)) === key) {
          released = undefined
        } else if (tooLarge(m, after.maximumPacketSize)) {
          // too large for the client: dropped (in flight on resume: treated as delivered)
        } else if (wasQueued && expired(m, time.now)) {
          // expired before it was sent
        } else if (wasQueued && queueFull > 0) {
          queueFull--
        } else {
          fail(
            Check.noLoss,
            `${showMessage(m)} left the session of ${id} on ${operation}, neither acknowledged nor dropped by a stated rule` +
              ` (dropped +${after.dropped - before.dropped}):\n      before ${showState(before)}\n      after  ${showState(after)}`
          )
        }
      }
    }
  }

  const outgoingList = (os: ReadonlyArray<Transitions.Outgoing>) => os.map(normalizeOutgoing)

  /** [7] first-time QoS ≥ 1 live deliveries per topic must follow publish order. */
  const checkOrder = (id: string, outgoing: ReadonlyArray<Transitions.Outgoing>) => {
    const v = view(id)
    for (const o of outgoing) {
      if (o._tag !== "Publish" || o.message.qos === 0 || o.message.retain) continue
      const m = toModelMessage(o.message)
      if (v.seen.has(m.payload)) continue
      v.seen.add(m.payload)
      const index = publishIndex.get(m.payload)
      if (index === undefined) continue
      const last = v.last.get(m.topic)
      if (last !== undefined && index < last.index) {
        fail(Check.order, `${id} received ${m.payload} on ${m.topic} after ${last.payload}, which was published later`)
      }
      v.last.set(m.topic, { index, payload: m.payload })
    }
  }

  /** [5] a newly sent QoS>0 PUBLISH carries a valid id no other in-flight message holds. */
  const checkNewIds = (id: string, outgoing: ReadonlyArray<Transitions.Outgoing>) => {
    const session = model.sessions.get(id)
    const held = new Map<number, MMessage>()
    if (session !== undefined) {
      for (const e of inflightOf(session)) if (e.packetId !== undefined) held.set(e.packetId, e.message)
    }
    const fresh = new Set<number>()
    for (const o of outgoing) {
      if (o._tag !== "Publish" || o.dup || o.message.qos === 0) continue
      const pid = o.packetId
      const what = showMessage(toModelMessage(o.message))
      if (pid === undefined || !Number.isInteger(pid) || pid < 1 || pid > 65535) {
        return fail(Check.packetIds, `${what} sent to ${id} with packet id ${String(pid)}`)
      }
      const holder = held.get(pid)
      if (holder !== undefined) {
        fail(Check.packetIds, `${what} sent to ${id} with id ${pid}, still in flight for ${showMessage(holder)}`)
      }
      if (fresh.has(pid)) fail(Check.packetIds, `two messages sent to ${id} at once with id ${pid}`)
      fresh.add(pid)
    }
  }

  /** [6] [10] what is sent: never expired (unless a resend), never too large, PUBLISHes only into a window with room. */
  const checkSent = (id: string, outgoing: ReadonlyArray<Transitions.Outgoing>, after: SessionState | undefined, resume: boolean) => {
    const limit = connections.get(id)?.maximumPacketSize
    for (const o of outgoing) {
      if (o._tag !== "Publish") continue
      const m = toModelMessage(o.message)
      if (!o.dup && expired(m, time.now)) {
        fail(Check.expiredNeverSent, `${showMessage(m)} was sent to ${id} at ${showTime(time.now)}, after it expired`)
      }
      if (tooLarge(m, limit)) {
        fail(Check.tooLargeNeverSent, `${showMessage(m)} (${packetSize(m)} bytes) was sent to ${id}, whose Maximum Packet Size is ${limit}`)
      }
    }
    if (after === undefined) return
    // What entered the window in this step, in order: every QoS 1/2 PUBLISH (new, or resent on this
    // connection) and, on resume, every PUBREL resent; PUBREL answering PUBREC uses no more of it.
    const entering = outgoing.filter((o) => o._tag === "Publish" ? o.message.qos > 0 : resume)
    const base = windowUsed(after) - entering.length
    entering.forEach((o, i) => {
      if (o._tag === "Publish" && base + i >= after.receiveMaximum) {
        fail(
          Check.window,
          `${showOutgoing(o)} was sent to ${id} with ${base + i} messages sent on this connection in flight, receiveMaximum is ${after.receiveMaximum}`
        )
      }
    })
  }

  /**
   * [3] after resume: the DUP PUBLISHes are the held-back messages, oldest first, each with the
   * packet id it held; a new QoS 1/2 PUBLISH only once none is owed any more.
   */
  const checkOwed = (id: string, outgoing: ReadonlyArray<Transitions.Outgoing>) => {
    const v = view(id)
    for (const o of outgoing) {
      if (o._tag !== "Publish" || o.message.qos === 0) continue
      const m = toModelMessage(o.message)
      if (o.dup) {
        const next = v.owed[0]
        if (next === undefined) {
          fail(Check.dupOnResume, `${showOutgoing(o)} was resent to ${id}, which is owed no held-back message`)
        } else if (next.packetId !== o.packetId || !sameMessage(next.message, m)) {
          fail(
            Check.dupOnResume,
            `${showOutgoing(o)} was resent to ${id}; the oldest message held back is ${showMessage(next.message)} with packet id ${next.packetId}` +
              ` (owed: ${v.owed.map((e) => `${e.packetId}:${e.message.payload}`).join(" ")})`
          )
        }
        v.owed.shift()
        note("held-back message resent as the window opened")
      } else if (v.owed.length > 0) {
        fail(
          Check.dupOnResume,
          `${showOutgoing(o)} was sent to ${id} while ${v.owed.map((e) => `${e.packetId}:${e.message.payload}`).join(" ")} ` +
            `held back on resume ${v.owed.length === 1 ? "is" : "are"} still owed`
        )
      }
    }
  }

  /** [4] the client's QoS 2 receiver: a PUBLISH on an id it holds is a duplicate, PUBREL releases the id. */
  const clientReceives = (id: string, outgoing: ReadonlyArray<Transitions.Outgoing>) => {
    const v = view(id)
    for (const o of outgoing) {
      if (o._tag === "Pubrel") {
        v.holding.delete(o.packetId)
        continue
      }
      if (o.message.qos !== 2 || o.packetId === undefined) continue
      const m = toModelMessage(o.message)
      const holds = v.holding.get(o.packetId)
      if (holds !== undefined) {
        if (holds !== m.payload) {
          fail(
            Check.qos2ToClient,
            `${showOutgoing(o)} was sent to ${id}, which still holds packet id ${o.packetId} for ${holds} (no PUBREL yet): ` +
              `it discards the message as a duplicate`
          )
        }
        continue
      }
      v.holding.set(o.packetId, m.payload)
      if (m.retain) continue
      if (v.delivered.has(m.payload)) {
        fail(Check.qos2ToClient, `${showOutgoing(o)} handed ${m.payload} to the application of ${id} a second time`)
      }
      v.delivered.add(m.payload)
    }
  }

  /** [model] the packets sent are the ones the model expects; learns the packet ids chosen. */
  const reconcile = (id: string, expected: ReadonlyArray<Expected>, actual: ReadonlyArray<Transitions.Outgoing>) => {
    const mismatch = () =>
      fail(
        Check.model,
        `${id} was sent ${showOutgoingList(actual)}\n    the model expects [${expected.map(showExpected).join(", ")}]`
      )
    if (expected.length !== actual.length) mismatch()
    expected.forEach((e, i) => {
      const a = actual[i]!
      if (e._tag === "Pubrel") {
        if (a._tag !== "Pubrel" || a.packetId !== e.packetId) mismatch()
        return
      }
      if (a._tag !== "Publish" || a.dup !== e.dup || !sameMessage(toModelMessage(a.message), e.message)) mismatch()
      const pid = (a as Extract<Transitions.Outgoing, { _tag: "Publish" }>).packetId
      if (e.packetId === "new") {
        if (pid === undefined) mismatch()
        e.entry!.packetId = pid
      } else if (pid !== e.packetId) mismatch()
    })
  }

  /** The checks of what one step sent (`resume`: a CONNECT that resumed the session, whose resends `checkResume` checks). */
  const afterOutgoing = (
    id: string,
    expected: ReadonlyArray<Expected>,
    actual: ReadonlyArray<Transitions.Outgoing>,
    after: SessionState | undefined,
    resume = false
  ) => {
    checkSent(id, actual, after, resume)
    checkOrder(id, actual)
    checkNewIds(id, actual)
    if (!resume) checkOwed(id, actual)
    clientReceives(id, actual)
    reconcile(id, expected, actual)
  }

  const noteDrops = (from: number) => {
    for (const drop of model.drops.slice(from)) {
      note(drop.message.qos > 0 ? `QoS 1/2 message dropped: ${drop.reason}` : `QoS 0 message dropped: ${drop.reason}`)
    }
  }

  const deliverTo = (id: string, m: MMessage, online: boolean) =>
    Effect.gen(function*() {
      const message = toMessage(m)
      const { after, result } = yield* through(
        id,
        `deliver(${showMessage(m)}, online=${online})`,
        sessions.deliver(id, message, online),
        onSession([] as ReadonlyArray<Transitions.Outgoing>, (before) => {
          const step = Transitions.deliver(before, message, online, limits, time.now)
          return { result: step.outgoing, after: step.state }
        }),
        outgoingList
      )
      const droppedBefore = model.sessions.get(id)?.dropped ?? 0
      const drops = model.drops.length
      const expected = model.deliver(id, m, online, time.now)
      note(expected.length > 0 ? "delivered at once" : "delivery queued, dropped or ignored")
      if ((model.sessions.get(id)?.dropped ?? 0) > droppedBefore) note("queue full: oldest dropped")
      noteDrops(drops)
      afterOutgoing(id, expected, result, after)
    })

  /** The test's router: each session whose subscriptions match gets the message once, at the highest granted QoS. */
  const publish = (m: MMessage) =>
    Effect.gen(function*() {
      publishIndex.set(m.payload, publishIndex.size)
      if (m.retain) retained.set(m.topic, m)
      for (const id of CLIENTS) {
        const session = model.sessions.get(id)
        if (session === undefined) continue
        let granted = -1
        for (const [filter, qos] of session.subscriptions) if (topicMatches(filter, m.topic)) granted = Math.max(granted, qos)
        if (granted < 0) continue
        yield* deliverTo(id, { ...m, qos: minQos(m.qos, granted as QoS), retain: false }, model.online.has(id))
      }
    })

  /** [9] the will published at this step is the one due, and no will is published twice or after a resume cancelled it. */
  const checkWill = (id: string, what: string, actual: MMessage | undefined, expected: MMessage | undefined, due: string) => {
    if (!isDeepStrictEqual(actual, expected)) {
      fail(
        Check.will,
        `${what} published ${actual === undefined ? "no will" : `the will ${showMessage(actual)}`} for ${id}; due: ${
          expected === undefined ? "none" : showMessage(expected)
        } (${due})`
      )
    }
    if (actual === undefined) return
    if (publishedWills.has(actual.payload)) fail(Check.will, `the will ${showMessage(actual)} of ${id} was published a second time`)
    if (cancelledWills.has(actual.payload)) {
      fail(Check.will, `the will ${showMessage(actual)} of ${id} was published after the client resumed its session`)
    }
    publishedWills.add(actual.payload)
    note("will published")
  }

  /** When the model says the will and the end of an offline session are due (for failure messages). */
  const dueOf = (id: string): string => {
    const session = model.sessions.get(id)
    if (session === undefined) return "no session"
    return `will at ${showTime(session.willAt)}, session ends at ${showTime(endOf(session))}`
  }

  const endConnection = (id: string, options: boolean | Transitions.DisconnectOptions, label: string) =>
    Effect.gen(function*() {
      const graceful = typeof options === "boolean" ? options : options.graceful
      const expiryInterval = typeof options === "boolean" ? undefined : options.expiryInterval
      const { result: ended } = yield* through(
        id,
        `disconnect (${label})`,
        sessions.disconnect(id, options, time.now),
        onSession<Transitions.Ended>({ state: undefined, will: undefined }, (before) => {
          const e = Transitions.disconnect(before, options, time.now)
          return { result: e, after: e.state }
        }),
        (e: Transitions.Ended) => ({ state: normalizeState(e.state), will: e.will === undefined ? null : toModelMessage(e.will) }),
        { mayEnd: true }
      )
      const expected = model.disconnect(id, { graceful, expiryInterval }, time.now)
      connections.delete(id)
      const stored = yield* get(id)
      if (expected.ended && stored !== undefined) {
        fail(Check.sessionEnds, `the session of ${id} ended with its connection (expiry 0) but is still stored: ${showState(stored)}`)
      }
      if (!expected.ended && stored === undefined) {
        fail(Check.sessionEnds, `the session of ${id} (expiry ${model.sessions.get(id)?.expiryInterval}) is gone when its connection ended`)
      }
      const will = ended.will === undefined ? undefined : toModelMessage(ended.will)
      checkWill(id, `the end of the connection (${label})`, will, expected.will, dueOf(id))
      note(expected.ended ? "session ended with its connection" : "session kept after its connection")
      if (!expected.ended && model.sessions.get(id)?.willAt !== undefined) note("delayed will waiting")
      if (expected.ended) resetView(id)
      if (will !== undefined) yield* publish(will)
    })

  /** [1] [3] [9] CONNECT (after closing a live connection with the same id: takeover). */
  const connect = (id: string, spec: ConnectSpec) =>
    Effect.gen(function*() {
      if (model.online.has(id)) {
        note("takeover")
        yield* endConnection(
          id,
          connections.get(id)?.version === 5 ? { graceful: false, expiryInterval: undefined } : false,
          "connection taken over"
        )
      }
      const v5 = spec.version === 5
      const will: MMessage | undefined = spec.will === undefined
        ? undefined
        : { topic: spec.will.topic, qos: spec.will.qos, retain: spec.will.retain, payload: `w${counter++}`, expiresAt: undefined }
      // what the broker's CONNECT handler asks of the session layer
      const asked: MConnect = {
        clean: spec.clean,
        expiryInterval: v5 ? spec.expiryInterval : spec.clean ? 0 : scenario.persistentSessionExpiry,
        receiveMaximum: v5 ? spec.receiveMaximum : scenario.receiveMaximum,
        maximumPacketSize: v5 ? spec.maximumPacketSize : undefined,
        will,
        willDelayInterval: v5 && spec.will !== undefined ? spec.will.delay : 0
      }
      const request: ConnectRequest = {
        clientId: id,
        clean: asked.clean,
        expiryInterval: asked.expiryInterval,
        receiveMaximum: asked.receiveMaximum,
        will: will === undefined ? undefined : toMessage(will),
        // 3.1.1 leaves the MQTT 5 fields out
        ...(v5 ? { willDelayInterval: asked.willDelayInterval, maximumPacketSize: asked.maximumPacketSize } : {})
      }
      connections.set(id, { version: spec.version, expiryInterval: asked.expiryInterval, maximumPacketSize: asked.maximumPacketSize })
      // what time has decided for the stored session, whether the sweep has run or not
      const stored = model.sessions.get(id)
      const end = stored === undefined ? undefined : endOf(stored)
      const endedByTime = end !== undefined && end <= time.now
      const willDue = !endedByTime && stored?.willAt !== undefined && stored.willAt <= time.now
      const hadSession = stored !== undefined && !endedByTime
      const due = dueOf(id)
      const { after, before, result } = yield* through(
        id,
        "connect",
        sessions.connect(request),
        (stored) => {
          const c = Transitions.connect(stored, request, time.now)
          return { result: c, after: c.state }
        },
        (c: Transitions.Connected) => ({
          sessionPresent: c.sessionPresent,
          outgoing: outgoingList(c.outgoing),
          discarded: normalizeState(c.discarded),
          will: c.will === undefined ? null : toModelMessage(c.will)
        }),
        // the stored session's messages end with it when clean start or its expiry ended it
        { replaced: spec.clean || endedByTime }
      )
      const drops = model.drops.length
      const expected = model.connect(id, asked, time.now)
      noteDrops(drops)
      if (result.sessionPresent !== (!spec.clean && hadSession)) {
        fail(
          Check.sessionPresent,
          `CONNACK sessionPresent=${result.sessionPresent ? 1 : 0} for clean start=${spec.clean ? 1 : 0} when ${
            hadSession ? "a session within its expiry was stored" : endedByTime ? `the stored session had ended (${due})` : "no session was stored"
          }`
        )
      }
      if ((result.discarded === undefined) !== (expected.discarded === undefined)) {
        fail(
          Check.model,
          `connect discarded ${showState(result.discarded)}, the model expects ${expected.discarded === undefined ? "none" : "the stored session"}`
        )
      }
      if (endedByTime) note("connect after the session's expiry, before the sweep: it had ended")
      if (willDue) note("connect after the delayed will was due, before the sweep: will published")
      if (expected.sessionPresent) note(before !== undefined && before.inflight.length > 0 ? "resumed with messages in flight" : "resumed")
      if (expected.discarded !== undefined && spec.clean) note("clean start discarded a session")
      if (v5 && spec.clean && asked.expiryInterval > 0) note("MQTT 5 clean start with a session expiry")
      if (v5 && !spec.clean && asked.expiryInterval === 0) note("MQTT 5 clean start 0 with expiry 0")
      if (!expected.sessionPresent) resetView(id)
      view(id).owed = []
      if (result.sessionPresent && before !== undefined && after !== undefined) {
        checkResume(id, before, after, asked, result.outgoing)
        if (before.will !== undefined && before.willAt !== undefined && before.willAt > time.now) {
          cancelledWills.add(toModelMessage(before.will).payload)
          note("delayed will cancelled by a resuming reconnect")
        }
      }
      afterOutgoing(id, expected.outgoing, result.outgoing, after, result.sessionPresent)
      // the broker publishes the will the CONNECT says is due: a delayed will whose time had come, or
      // the waiting will of a session that clean start (or its expiry) ended
      const published = result.will === undefined ? undefined : toModelMessage(result.will)
      checkWill(id, "the CONNECT", published, expected.will, due)
      if (published !== undefined && spec.clean && !endedByTime && !willDue) note("clean start published a waiting will")
      if (published !== undefined) yield* publish(published)
    })

  /**
   * [3] on resume the in-flight messages come first, in order: each PUBREL-stage one resent
   * (PUBREL), each PUBLISH-stage one resent with its id and DUP=1 while the new window has room,
   * or dropped as too large for the client; the rest are held back in flight, with their ids and
   * stages, owed to the client as the window opens.
   */
  const checkResume = (
    id: string,
    before: SessionState,
    after: SessionState,
    asked: MConnect,
    outgoing: ReadonlyArray<Transitions.Outgoing>
  ) => {
    let resent = 0
    let used = 0
    const heldBack: Array<InflightMessage> = []
    for (const entry of before.inflight) {
      const m = toModelMessage(entry.message)
      if (entry.stage !== "pubcomp" && tooLarge(m, asked.maximumPacketSize)) {
        note("in-flight message too large for the client on resume")
        continue
      }
      if (entry.stage !== "pubcomp" && used >= asked.receiveMaximum) {
        heldBack.push(entry)
        continue
      }
      const wanted = entry.stage === "pubcomp" ? `PUBREL(${entry.packetId})` : `PUBLISH(${showMessage(m)}, id=${entry.packetId}, dup)`
      const o = outgoing[resent]
      const ok = o !== undefined && (entry.stage === "pubcomp"
        ? o._tag === "Pubrel" && o.packetId === entry.packetId
        : o._tag === "Publish" && o.dup && o.packetId === entry.packetId && sameMessage(toModelMessage(o.message), m))
      if (!ok) {
        fail(
          Check.dupOnResume,
          `packet #${resent} on resume should be ${wanted} (${used} of the window of ${asked.receiveMaximum} used so far), got ${
            o === undefined ? "nothing" : showOutgoing(o)
          }: ${showOutgoingList(outgoing)}`
        )
      }
      resent++
      used++
    }
    const rest = outgoing.slice(resent)
    if (rest.some((o) => o._tag === "Pubrel" || o.dup)) {
      fail(Check.dupOnResume, `${id} was sent ${showOutgoingList(outgoing)} on resume; resends must come first, and only while the window has room`)
    }
    if (heldBack.length === 0) return
    note("smaller window on resume: messages held back in flight")
    for (const entry of heldBack) {
      const kept = after.inflight.find((e) => e.packetId === entry.packetId)
      if (
        kept === undefined || kept.stage !== entry.stage || kept.awaitingResend !== true ||
        !sameMessage(toModelMessage(kept.message), toModelMessage(entry.message))
      ) {
        fail(
          Check.dupOnResume,
          `${toModelMessage(entry.message).payload} (id ${entry.packetId}, ${entry.stage}) should be held back in flight with its packet id and stage: ${
            showState(after)
          }`
        )
      }
    }
    if (rest.some((o) => o._tag === "Publish" && o.message.qos > 0)) {
      fail(Check.dupOnResume, `${id} was sent ${showOutgoingList(outgoing)} on resume, though messages are held back`)
    }
    view(id).owed = heldBack.map((e) => ({ packetId: e.packetId, message: toModelMessage(e.message) }))
  }

  /** [2] [9] time passes; then, unless `sweep` is false, the broker's sweep applies `expire` to each offline session whose deadline is due. */
  const tick = (ms: number, sweep: boolean) =>
    Effect.gen(function*() {
      time.now += ms
      if (!sweep) {
        const overdue = CLIENTS.some((id) => {
          const session = model.sessions.get(id)
          const deadline = session === undefined || model.online.has(id) ? undefined : deadlineOf(session)
          return deadline !== undefined && deadline <= time.now
        })
        if (overdue) note("a deadline passed without a sweep")
        return
      }
      for (const id of CLIENTS) {
        if (model.online.has(id)) continue
        const stored = yield* get(id)
        const deadline = stored === undefined ? undefined : nextDeadline(stored)
        let will: MMessage | undefined
        if (deadline !== undefined && deadline <= time.now) {
          const { result } = yield* through(
            id,
            "expire (sweep)",
            sessions.expire(id, time.now),
            onSession<Transitions.Ended>({ state: undefined, will: undefined }, (before) => {
              const e = Transitions.expire(before, time.now)
              return { result: e, after: e.state }
            }),
            (e: Transitions.Ended) => ({ state: normalizeState(e.state), will: e.will === undefined ? null : toModelMessage(e.will) }),
            { mayEnd: true }
          )
          if (result.will !== undefined) will = toModelMessage(result.will)
        }
        const due = dueOf(id)
        const session = model.sessions.get(id)
        const expected = model.expire(id, time.now)
        const after = yield* get(id)
        if (expected.ended && after !== undefined) {
          fail(Check.sessionEnds, `the session of ${id} expired (${due}) but is still stored: ${showState(after)}`)
        }
        if (!expected.ended && session !== undefined && after === undefined) {
          fail(Check.sessionEnds, `the session of ${id} is gone though within its expiry (${due})`)
        }
        checkWill(id, "the expiry sweep", will, expected.will, due)
        if (expected.ended) {
          note("session expired by time")
          resetView(id)
        }
        if (will !== undefined) note(expected.ended ? "will published as the session expired" : "delayed will published by the sweep")
        if (will !== undefined) yield* publish(will)
      }
    })

  /**
   * The packet ids the client can acknowledge: those of the in-flight messages it was sent on this
   * connection (held-back ones too with `acknowledgeHeldBack`).
   */
  const held = (id: string) => {
    const session = model.sessions.get(id)
    return session === undefined
      ? []
      : inflightOf(session).filter((e) => e.packetId !== undefined && (acknowledgeHeldBack || !e.heldBack))
  }

  /** Whether a packet id is one of a message held back on resume (which a conformant client does not acknowledge). */
  const isHeldBack = (id: string, packetId: number): boolean => {
    const session = model.sessions.get(id)
    return session !== undefined && inflightOf(session).some((e) => e.heldBack && e.packetId === packetId)
  }

  /** The client acknowledges: the right packet for a held message's stage, or the given one. */
  const acknowledge = (id: string, command: Extract<Command, { _tag: "Ack" | "RawAck" }>) => {
    const holding = held(id)
    const target = command.target
    if (command._tag === "Ack") {
      if (holding.length === 0) return Effect.void
      const entry = holding[("held" in target ? target.held : target.raw) % holding.length]!
      return sendAck(id, ackFor(entry.stage), entry.packetId!)
    }
    const packetId = "held" in target
      ? holding.length > 0 ? holding[target.held % holding.length]!.packetId! : target.held + 1
      : target.raw
    if (!acknowledgeHeldBack && isHeldBack(id, packetId)) return Effect.void
    return sendAck(id, command.kind, packetId)
  }

  const acknowledgeAll = (id: string) =>
    Effect.forEach(held(id), (entry) => sendAck(id, ackFor(entry.stage), entry.packetId!), { discard: true })

  const sendAck = (id: string, kind: "puback" | "pubrec" | "pubcomp", packetId: number) =>
    Effect.gen(function*() {
      const { after, result } = yield* through(
        id,
        `${kind}(${packetId})`,
        sessions[kind](id, packetId),
        onSession([] as ReadonlyArray<Transitions.Outgoing>, (before) => {
          const step = kind === "pubrec" ? Transitions.pubrec(before, packetId) : Transitions[kind](before, packetId, time.now)
          return { result: step.outgoing, after: step.state }
        }),
        outgoingList,
        { released: kind === "pubrec" ? undefined : { packetId, stage: kind } }
      )
      const pendingBefore = model.sessions.get(id)?.pending.length ?? 0
      // the right acknowledgement for a held-back message's stage (PUBACK for QoS 1, PUBREC for QoS 2)
      // says the client has it: it is owed no resend of it any more. A wrong one (PUBACK for a QoS 2
      // message, PUBREC for a QoS 1 one) is ignored and leaves it owed.
      const session = model.sessions.get(id)
      const acknowledged = session !== undefined &&
        inflightOf(session).some((e) => e.heldBack && e.packetId === packetId && e.stage === kind)
      const v = view(id)
      if (acknowledged) {
        v.owed = v.owed.filter((e) => e.packetId !== packetId)
        note(`${kind} of a held-back message`)
      } else if (isHeldBack(id, packetId)) note("wrong acknowledgement of a held-back message: still owed")
      const drops = model.drops.length
      const expected = kind === "pubrec" ? model.pubrec(id, packetId) : model[kind](id, packetId, time.now)
      const released = (model.sessions.get(id)?.pending.length ?? 0) < pendingBefore
      note(released ? `${kind} released a message` : expected.length > 0 ? `${kind} answered by PUBREL` : `${kind} ignored`)
      if (expected.some((e) => e._tag === "Publish")) note("acknowledgement refilled the window")
      noteDrops(drops)
      afterOutgoing(id, expected, result, after)
    })

  const qos2Publish = (id: string, command: Extract<Command, { _tag: "Qos2Publish" }>) =>
    Effect.gen(function*() {
      const v = view(id)
      const open = v.exchanges.get(command.packetId)
      const { result: forward } = yield* through(
        id,
        `receiveQos2(${command.packetId})`,
        sessions.receiveQos2(id, command.packetId),
        onSession(false, (before) => {
          const r = Transitions.receiveQos2(before, command.packetId)
          return { result: r.forward, after: r.state }
        }),
        (b) => b
      )
      note(open === undefined ? "inbound QoS 2 PUBLISH" : "inbound QoS 2 PUBLISH re-sent before PUBREL")
      if (open !== undefined && forward) {
        fail(Check.qos2Once, `the re-sent PUBLISH ${showMessage(open.message)} (id ${command.packetId}) before PUBREL was forwarded again`)
      }
      if (open === undefined && !forward) fail(Check.qos2Once, `a new QoS 2 PUBLISH (id ${command.packetId}) was not forwarded`)
      if (forward !== model.receiveQos2(id, command.packetId)) fail(Check.model, `receiveQos2 returned ${forward}`)
      const exchange = open ?? {
        message: { topic: command.topic, payload: `q${counter++}`, qos: 2 as const, retain: command.retain, expiresAt: undefined },
        forwards: 0
      }
      v.exchanges.set(command.packetId, exchange)
      if (forward) {
        exchange.forwards++
        yield* publish(exchange.message)
      }
    })

  const qos2Pubrel = (id: string, packetId: number) =>
    Effect.gen(function*() {
      yield* through(
        id,
        `pubrel(${packetId})`,
        sessions.pubrel(id, packetId),
        onSession(undefined, (before) => ({ result: undefined, after: Transitions.pubrel(before, packetId) })),
        () => null
      )
      model.pubrel(id, packetId)
      const v = view(id)
      const exchange = v.exchanges.get(packetId)
      if (exchange !== undefined && exchange.forwards !== 1) {
        fail(Check.qos2Once, `${showMessage(exchange.message)} was forwarded ${exchange.forwards} times before PUBREL`)
      }
      v.exchanges.delete(packetId)
    })

  const subscribe = (id: string, filter: string, qos: QoS) =>
    Effect.gen(function*() {
      const granted = [[filter, { qos }]] as const
      yield* through(
        id,
        `subscribe(${filter})`,
        sessions.subscribe(id, granted),
        onSession(undefined, (before) => ({ result: undefined, after: Transitions.subscribe(before, granted) })),
        () => null
      )
      model.subscribe(id, filter, qos)
      // retained messages follow the grant, with RETAIN=1
      for (const [topic, m] of retained) {
        if (topicMatches(filter, topic)) yield* deliverTo(id, { ...m, qos: minQos(m.qos, qos), retain: true }, true)
      }
    })

  const unsubscribe = (id: string, filter: string) =>
    Effect.gen(function*() {
      const { result } = yield* through(
        id,
        `unsubscribe(${filter})`,
        sessions.unsubscribe(id, [filter]),
        onSession([false] as ReadonlyArray<boolean>, (before) => ({
          result: [before.subscriptions.has(filter)],
          after: Transitions.unsubscribe(before, [filter])
        })),
        (had) => had
      )
      const had = model.unsubscribe(id, filter)
      if (!isDeepStrictEqual(result, [had])) fail(Check.model, `unsubscribe(${filter}) of ${id} returned ${json(result)}, the model says [${had}]`)
    })

  /** The state checks run for every client after every step. */
  const checkClient = (id: string) =>
    Effect.gen(function*() {
      const stored = yield* get(id)
      const m = model.sessions.get(id)
      if (stored !== undefined) {
        checkBounds(id, stored)
        checkStall(id, stored)
        if (stored.queue.length > Math.max(0, limits.maxQueuedMessages)) {
          fail(Check.queueBound, `${id} has ${stored.queue.length} queued messages, maxQueuedMessages is ${limits.maxQueuedMessages}`)
        }
        if (m !== undefined) {
          const queue = stored.queue.toArray().map(toModelMessage)
          const expected = queueOf(m).map((e) => e.message)
          if (stored.dropped !== m.dropped || !isDeepStrictEqual(queue, expected)) {
            fail(
              Check.queueBound,
              `${id} has queue [${queue.map(showMessage).join(", ")}] and dropped=${stored.dropped}; ` +
                `the model (oldest dropped, expired and too large ones left out) has [${expected.map(showMessage).join(", ")}] and dropped=${m.dropped}`
            )
          }
        }
      }
      if (m !== undefined) {
        const unacknowledged = m.pending.filter((e) => e.message.qos > 0)
        const present = stored === undefined ? [] : [
          ...stored.inflight.map((e) => ({ message: toModelMessage(e.message), packetId: e.packetId as number | undefined })),
          ...stored.queue.toArray().map((message) => ({ message: toModelMessage(message), packetId: undefined }))
        ]
        for (const e of unacknowledged) {
          const i = present.findIndex((p) => sameMessage(p.message, e.message) && (!e.sent || p.packetId === e.packetId))
          if (i < 0) {
            fail(
              Check.noLoss,
              `${showMessage(e.message)} (${e.sent ? `in flight as id ${e.packetId}` : "queued"}) for ${id} is missing from ${showState(stored)}`
            )
          }
          present.splice(i, 1)
        }
      }
      if ((stored === undefined) !== (m === undefined)) {
        fail(
          Check.model,
          `${id} has ${stored === undefined ? "no stored session" : `a stored session ${showState(stored)}`}, the model ${m === undefined ? "none" : "one"}`
        )
      }
      if (stored !== undefined && m !== undefined) {
        const actual = implementationView(stored)
        const expected = modelView(m)
        if (!isDeepStrictEqual(actual, expected)) {
          fail(Check.model, `${id} is stored as\n      ${json(actual)}\n    the model has\n      ${json(expected)}`)
        }
      }
    })

  const run = (command: Command) => {
    const id = "client" in command ? CLIENTS[command.client]! : ""
    const online = model.online.has(id)
    switch (command._tag) {
      case "Connect":
        return connect(id, command)
      case "Takeover":
        return online ? connect(id, command) : Effect.void
      case "Subscribe":
        return online ? subscribe(id, command.filter, command.qos) : Effect.void
      case "Unsubscribe":
        return online ? unsubscribe(id, command.filter) : Effect.void
      case "Publish":
        return publish({
          topic: command.topic,
          payload: `p${counter++}${"-".repeat(command.pad)}`,
          qos: command.qos,
          retain: command.retain,
          expiresAt: command.expiresIn === undefined ? undefined : time.now + command.expiresIn * 1000
        })
      case "Ack":
      case "RawAck":
        return online ? acknowledge(id, command) : Effect.void
      case "AckAll":
        return online ? acknowledgeAll(id) : Effect.void
      case "Qos2Publish":
        return online ? qos2Publish(id, command) : Effect.void
      case "Qos2Pubrel":
        return online ? qos2Pubrel(id, command.packetId) : Effect.void
      case "Disconnect": {
        if (!online) return Effect.void
        const connection = connections.get(id)!
        // a 3.1.1 DISCONNECT has no reason code and no properties
        if (connection.version === 4) return endConnection(id, true, "DISCONNECT")
        const expiry = command.expiryInterval
        if (expiry !== undefined && expiry > 0 && connection.expiryInterval === 0) {
          // raising the expiry from 0 is a protocol error: the broker closes the connection
          note("DISCONNECT raising expiry 0: protocol error")
          return endConnection(id, { graceful: false, expiryInterval: undefined }, "DISCONNECT raising expiry 0: protocol error")
        }
        if (expiry !== undefined) note("DISCONNECT set a session expiry")
        if (command.withWill) note("DISCONNECT with will (0x04)")
        return endConnection(
          id,
          { graceful: !command.withWill, expiryInterval: expiry },
          `DISCONNECT${command.withWill ? " 0x04" : ""}${expiry === undefined ? "" : ` expiry=${expiry}`}`
        )
      }
      case "ConnectionLost":
        if (!online) return Effect.void
        return endConnection(
          id,
          connections.get(id)!.version === 5 ? { graceful: false, expiryInterval: undefined } : false,
          "connection lost"
        )
      case "Tick":
        return tick(command.ms, command.sweep)
    }
  }

  if (!isDeepStrictEqual(sessions.limits, limits)) fail(Check.model, `Sessions.limits is ${json(sessions.limits)}`)
  for (const [index, command] of scenario.commands.entries()) {
    where = `step ${index}: ${showCommand(command)}`
    yield* run(command)
    for (const id of CLIENTS) yield* checkClient(id)
  }
})

/** The `Sessions` service with the scenario's limits over a fresh instance of the provider Layer. */
export const sessionsOver = (
  providerLayer: Layer.Layer<SessionStateProvider>,
  limits: Transitions.Limits
): Layer.Layer<Sessions.Sessions | SessionStateProvider> => Sessions.layer(limits).pipe(Layer.provideMerge(providerLayer))

/** Replays a scenario against a fresh provider built from the Layer. */
export const runScenario = (
  providerLayer: Layer.Layer<SessionStateProvider>,
  scenario: Scenario,
  options: ReplayOptions = {}
): Promise<void> =>
  Effect.runPromise(
    replay(scenario, options).pipe(
      Effect.provide(
        sessionsOver(providerLayer, { maxQueuedMessages: scenario.maxQueuedMessages, queueQos0: scenario.queueQos0 })
      )
    )
  )
