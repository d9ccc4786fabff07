/**
 * Replays a scenario against the `Sessions` service over a provider Layer, playing the broker
 * (a tiny router with retained messages, connection bookkeeping, will publication) and the
 * clients (acknowledging, sending QoS 2), and after every step checks the named invariants and
 * that the implementation agrees with the reference model.
 *
 * A failed check throws an `InvariantViolation` whose message starts with the check's name and
 * ends with the step (index and command) it failed at.
 */
import { Effect, Layer, Option } from "effect"
import { isDeepStrictEqual } from "node:util"
import { minQos, type QoS } from "../../src/session/Message.ts"
import type { ConnectRequest, SessionState } from "../../src/session/SessionState.ts"
import { SessionStateProvider, type SessionStoreError } from "../../src/session/SessionStateProvider.ts"
import * as Sessions from "../../src/session/Sessions.ts"
import * as Transitions from "../../src/session/Transitions.ts"
import { type Command, type Scenario, showCommand } from "./Commands.ts"
import {
  CLIENTS,
  type Expected,
  inflightOf,
  type MMessage,
  type MSession,
  queueOf,
  ReferenceModel,
  sameMessage,
  showExpected,
  showMessage,
  type Stage,
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
  sessionPresent: "1 sessionPresent is 1 exactly when clean=0 and a session was stored",
  sessionEnds: "2 a clean session is gone when its connection ends, a persistent one is kept",
  noLoss: "3 no QoS 1/2 message is lost: it stays in flight or queued until acknowledged, or is counted as dropped",
  dupOnResume: "3 on resume every in-flight message is resent first, in order, with DUP=1 (PUBREL past PUBREC)",
  qos2Once: "4 an inbound QoS 2 message is forwarded exactly once per PUBLISH…PUBREL exchange",
  packetIds: "5 packet ids in flight are unique, within 1..65535, and reused only after release",
  window: "6 in-flight count ≤ receiveMaximum",
  queueBound: "6 queue ≤ maxQueuedMessages; when full the oldest is dropped and counted",
  noStall: "6 an online session holds no queued message while its window has room",
  order: "7 QoS ≥ 1 messages on one topic reach a subscriber in publish order",
  writeThrough: "8 the stored session equals the pure transition applied to the previously stored one",
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

/** What a client remembers between packets. */
interface ClientView {
  /** Its open outbound QoS 2 exchanges: packet id → message and how often the broker forwarded it. */
  readonly exchanges: Map<number, { readonly message: MMessage; forwards: number }>
  /** Payloads of QoS ≥ 1 live messages it has received (to tell first deliveries from resends). */
  readonly seen: Set<string>
  /** Per topic, the publish index and payload of the last first-time QoS ≥ 1 live delivery. */
  readonly last: Map<string, { readonly index: number; readonly payload: string }>
}

const ackFor = (stage: Stage): "puback" | "pubrec" | "pubcomp" => (stage === "puback" ? "puback" : stage)

const modelView = (m: MSession) => ({
  clean: m.clean,
  expiryInterval: m.expiryInterval,
  subscriptions: [...m.subscriptions]
    .map(([filter, qos]) => [filter, { qos }] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  inflight: inflightOf(m).map((e) => ({ packetId: e.packetId, stage: e.stage, message: e.message })),
  queue: queueOf(m).map((e) => e.message),
  dropped: m.dropped,
  awaitingPubrel: [...m.awaitingPubrel],
  will: m.will ?? null,
  receiveMaximum: m.receiveMaximum,
  disconnectedAt: m.disconnectedAt ?? null
})

const implementationView = (s: SessionState) => ({
  clean: s.clean,
  expiryInterval: s.expiryInterval,
  subscriptions: [...s.subscriptions]
    .map(([filter, sub]) => [filter, { qos: sub.qos }] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  inflight: s.inflight.map((e) => ({ packetId: e.packetId, stage: e.stage, message: toModelMessage(e.message) })),
  queue: s.queue.toArray().map(toModelMessage),
  dropped: s.dropped,
  awaitingPubrel: [...s.awaitingPubrel],
  will: s.will === undefined ? null : toModelMessage(s.will),
  receiveMaximum: s.receiveMaximum,
  disconnectedAt: s.disconnectedAt ?? null
})

const json = (value: unknown): string => JSON.stringify(value)

/** The time the scenarios start at (epoch ms). */
const START = 1_700_000_000_000

/** Replays a scenario; needs `Sessions` (built with the scenario's limits) and the provider. */
export const replay = Effect.fnUntraced(function*(scenario: Scenario, stats?: Map<string, number>) {
  const sessions = yield* Sessions.Sessions
  const provider = yield* SessionStateProvider
  const limits: Transitions.Limits = { maxQueuedMessages: scenario.maxQueuedMessages, queueQos0: scenario.queueQos0 }
  const model = new ReferenceModel(limits)
  const views = new Map<string, ClientView>()
  const resetView = (id: string) =>
    views.set(id, { exchanges: new Map(), seen: views.get(id)?.seen ?? new Set(), last: new Map() })
  for (const id of CLIENTS) resetView(id)
  const view = (id: string): ClientView => views.get(id)!
  const retained = new Map<string, MMessage>()
  const publishIndex = new Map<string, number>()
  let counter = 0
  let now = START
  let where = "setup"

  /** Counts a situation the scenario reached (for measuring what the generators cover). */
  const note = (label: string) => {
    if (stats !== undefined) stats.set(label, (stats.get(label) ?? 0) + 1)
  }

  const fail = (check: CheckName, detail: string): never => {
    throw new InvariantViolation(check, detail, where)
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
   * Then the bounds and the order every stored session must keep.
   */
  const through = <A>(
    id: string,
    operation: string,
    run: Effect.Effect<A, SessionStoreError>,
    pure: (before: SessionState | undefined) => { readonly result: A; readonly after: SessionState | undefined },
    normalize: (a: A) => unknown
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
      }
      return { result, before }
    })

  /** [5] [6] what must hold of any stored session, whatever the model says. */
  const checkBounds = (id: string, stored: SessionState) => {
    const ids = stored.inflight.map((e) => e.packetId)
    for (const pid of ids) {
      if (!Number.isInteger(pid) || pid < 1 || pid > 65535) fail(Check.packetIds, `${id} has packet id ${pid} in flight`)
    }
    if (new Set(ids).size !== ids.length) fail(Check.packetIds, `${id} has duplicate packet ids in flight: ${ids.join(" ")}`)
    if (stored.inflight.length > stored.receiveMaximum) {
      fail(Check.window, `${id} has ${stored.inflight.length} messages in flight, receiveMaximum is ${stored.receiveMaximum}`)
    }
    if (stored.queue.length > Math.max(0, limits.maxQueuedMessages)) {
      fail(Check.queueBound, `${id} has ${stored.queue.length} queued messages, maxQueuedMessages is ${limits.maxQueuedMessages}`)
    }
  }

  /** [7] a session holds its live QoS ≥ 1 messages of one topic (in flight, then queued) in publish order. */
  const checkStoredOrder = (id: string, stored: SessionState) => {
    const last = new Map<string, { readonly index: number; readonly payload: string }>()
    for (const message of [...stored.inflight.map((e) => e.message), ...stored.queue]) {
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

  const afterOutgoing = (id: string, expected: ReadonlyArray<Expected>, actual: ReadonlyArray<Transitions.Outgoing>) => {
    checkOrder(id, actual)
    checkNewIds(id, actual)
    reconcile(id, expected, actual)
  }

  const deliverTo = (id: string, m: MMessage, online: boolean) =>
    Effect.gen(function*() {
      const message = toMessage(m)
      const { result } = yield* through(
        id,
        `deliver(${showMessage(m)}, online=${online})`,
        sessions.deliver(id, message, online),
        onSession([] as ReadonlyArray<Transitions.Outgoing>, (before) => {
          const step = Transitions.deliver(before, message, online, limits)
          return { result: step.outgoing, after: step.state }
        }),
        outgoingList
      )
      const droppedBefore = model.sessions.get(id)?.dropped ?? 0
      const expected = model.deliver(id, m, online)
      note(expected.length > 0 ? "delivered at once" : "delivery queued, dropped or ignored")
      if ((model.sessions.get(id)?.dropped ?? 0) > droppedBefore) note("queue full: oldest dropped")
      afterOutgoing(id, expected, result)
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

  const endConnection = (id: string, graceful: boolean) =>
    Effect.gen(function*() {
      const { result: ended } = yield* through(
        id,
        graceful ? "disconnect (DISCONNECT)" : "disconnect (connection lost)",
        sessions.disconnect(id, graceful, now),
        onSession<Transitions.Ended>({ state: undefined, will: undefined }, (before) => {
          const e = Transitions.disconnect(before, graceful, now)
          return { result: e, after: e.state }
        }),
        (e: Transitions.Ended) => ({ state: normalizeState(e.state), will: e.will === undefined ? null : toModelMessage(e.will) })
      )
      const expected = model.disconnect(id, graceful, now)
      const stored = yield* get(id)
      if (expected.ended && stored !== undefined) {
        fail(Check.sessionEnds, `the session of ${id} ended but is still stored: ${showState(stored)}`)
      }
      if (!expected.ended && stored === undefined) fail(Check.sessionEnds, `the persistent session of ${id} is gone`)
      const will = ended.will === undefined ? undefined : toModelMessage(ended.will)
      if (!isDeepStrictEqual(will, expected.will)) {
        fail(
          Check.model,
          `the will returned is ${will === undefined ? "none" : showMessage(will)}, the model expects ${
            expected.will === undefined ? "none" : showMessage(expected.will)
          }`
        )
      }
      note(expected.ended ? "session ended" : "persistent session kept")
      if (will !== undefined) note("will published")
      if (expected.ended) resetView(id)
      if (will !== undefined) yield* publish(will)
    })

  const connect = (id: string, command: Extract<Command, { _tag: "Connect" }>) =>
    Effect.gen(function*() {
      // takeover: the live connection with this id is closed first (without DISCONNECT)
      if (model.online.has(id)) {
        note("takeover")
        yield* endConnection(id, false)
      }
      const will: MMessage | undefined = command.will === undefined
        ? undefined
        : { ...command.will, payload: `w${counter++}` }
      const request: ConnectRequest = {
        clientId: id,
        clean: command.clean,
        expiryInterval: command.expiryInterval,
        receiveMaximum: scenario.receiveMaximum,
        will: will === undefined ? undefined : toMessage(will)
      }
      const hadSession = model.sessions.has(id)
      const { before, result } = yield* through(
        id,
        "connect",
        sessions.connect(request),
        (stored) => {
          const c = Transitions.connect(stored, request)
          return { result: c, after: c.state }
        },
        (c: Transitions.Connected) => ({
          sessionPresent: c.sessionPresent,
          outgoing: outgoingList(c.outgoing),
          discarded: normalizeState(c.discarded)
        })
      )
      const expected = model.connect(id, {
        clean: command.clean,
        expiryInterval: command.expiryInterval,
        receiveMaximum: scenario.receiveMaximum,
        will
      })
      if (result.sessionPresent !== (!command.clean && hadSession)) {
        fail(
          Check.sessionPresent,
          `CONNACK sessionPresent=${result.sessionPresent ? 1 : 0} for clean=${command.clean ? 1 : 0} when ${
            hadSession ? "a session was stored" : "no session was stored"
          }`
        )
      }
      if (result.sessionPresent && before !== undefined) {
        before.inflight.forEach((entry, i) => {
          const o = result.outgoing[i]
          const ok = o !== undefined && (entry.stage === "pubcomp"
            ? o._tag === "Pubrel" && o.packetId === entry.packetId
            : o._tag === "Publish" && o.dup && o.packetId === entry.packetId &&
              sameMessage(toModelMessage(o.message), toModelMessage(entry.message)))
          if (!ok) {
            const wanted = entry.stage === "pubcomp"
              ? `PUBREL(${entry.packetId})`
              : `PUBLISH(${showMessage(toModelMessage(entry.message))}, id=${entry.packetId}, dup)`
            fail(Check.dupOnResume, `packet #${i} on resume should be ${wanted}, got ${o === undefined ? "nothing" : showOutgoing(o)}`)
          }
        })
      }
      if ((result.discarded === undefined) !== (expected.discarded === undefined)) {
        fail(Check.model, `connect discarded ${showState(result.discarded)}, the model expects ${expected.discarded === undefined ? "none" : "the stored session"}`)
      }
      if (expected.sessionPresent) note(before !== undefined && before.inflight.length > 0 ? "resumed with messages in flight" : "resumed")
      if (expected.discarded !== undefined) note("clean start discarded a session")
      if (!expected.sessionPresent) resetView(id)
      afterOutgoing(id, expected.outgoing, result.outgoing)
    })

  const held = (id: string) => {
    const session = model.sessions.get(id)
    return session === undefined ? [] : inflightOf(session).filter((e) => e.packetId !== undefined)
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
    return sendAck(id, command.kind, packetId)
  }

  const acknowledgeAll = (id: string) =>
    Effect.forEach(held(id), (entry) => sendAck(id, ackFor(entry.stage), entry.packetId!), { discard: true })

  const sendAck = (id: string, kind: "puback" | "pubrec" | "pubcomp", packetId: number) =>
    Effect.gen(function*() {
      const { result } = yield* through(
        id,
        `${kind}(${packetId})`,
        sessions[kind](id, packetId),
        onSession([] as ReadonlyArray<Transitions.Outgoing>, (before) => {
          const step = Transitions[kind](before, packetId)
          return { result: step.outgoing, after: step.state }
        }),
        outgoingList
      )
      const pendingBefore = model.sessions.get(id)?.pending.length ?? 0
      const expected = model[kind](id, packetId)
      const released = (model.sessions.get(id)?.pending.length ?? 0) < pendingBefore
      note(released ? `${kind} released a message` : expected.length > 0 ? `${kind} answered by PUBREL` : `${kind} ignored`)
      if (expected.some((e) => e._tag === "Publish")) note("acknowledgement refilled the window")
      afterOutgoing(id, expected, result)
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
        message: { topic: command.topic, payload: `q${counter++}`, qos: 2 as const, retain: command.retain },
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
      yield* through(
        id,
        `unsubscribe(${filter})`,
        sessions.unsubscribe(id, [filter]),
        onSession(undefined, (before) => ({ result: undefined, after: Transitions.unsubscribe(before, [filter]) })),
        () => null
      )
      model.unsubscribe(id, filter)
    })

  /** The state checks run for every client after every step. */
  const checkClient = (id: string) =>
    Effect.gen(function*() {
      const stored = yield* get(id)
      const m = model.sessions.get(id)
      if (stored !== undefined) {
        checkBounds(id, stored)
        if (m !== undefined) {
          const queue = stored.queue.toArray().map(toModelMessage)
          const expected = queueOf(m).map((e) => e.message)
          if (stored.dropped !== m.dropped || !isDeepStrictEqual(queue, expected)) {
            fail(
              Check.queueBound,
              `${id} has queue [${queue.map(showMessage).join(", ")}] and dropped=${stored.dropped}; ` +
                `dropping the oldest gives [${expected.map(showMessage).join(", ")}] and dropped=${m.dropped}`
            )
          }
        }
        const head = stored.queue.at(0)
        // (a QoS 0 message may wait behind a full window: dropping the oldest can put one at the head)
        if (model.online.has(id) && head !== undefined && stored.inflight.length < stored.receiveMaximum) {
          fail(Check.noStall, `${id} is online with ${stored.inflight.length}/${stored.receiveMaximum} in flight and ${stored.queue.length} queued`)
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
        fail(Check.model, `${id} has ${stored === undefined ? "no stored session" : `a stored session ${showState(stored)}`}, the model ${m === undefined ? "none" : "one"}`)
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
      case "Subscribe":
        return online ? subscribe(id, command.filter, command.qos) : Effect.void
      case "Unsubscribe":
        return online ? unsubscribe(id, command.filter) : Effect.void
      case "Publish":
        return publish({ topic: command.topic, payload: `p${counter++}`, qos: command.qos, retain: command.retain })
      case "Ack":
      case "RawAck":
        return online ? acknowledge(id, command) : Effect.void
      case "AckAll":
        return online ? acknowledgeAll(id) : Effect.void
      case "Qos2Publish":
        return online ? qos2Publish(id, command) : Effect.void
      case "Qos2Pubrel":
        return online ? qos2Pubrel(id, command.packetId) : Effect.void
      case "Disconnect":
        return online ? endConnection(id, true) : Effect.void
      case "ConnectionLost":
        return online ? endConnection(id, false) : Effect.void
      case "Tick":
        return Effect.sync(() => {
          now += command.ms
        })
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
export const runScenario = (providerLayer: Layer.Layer<SessionStateProvider>, scenario: Scenario): Promise<void> =>
  Effect.runPromise(
    replay(scenario).pipe(
      Effect.provide(
        sessionsOver(providerLayer, { maxQueuedMessages: scenario.maxQueuedMessages, queueQos0: scenario.queueQos0 })
      )
    )
  )

