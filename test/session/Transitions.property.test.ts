/**
 * Properties of the pure transitions on arbitrary well-formed sessions, each stated against a
 * direct reading of the rule (not against the model): packet id allocation, the window, the queue
 * bound, resume, acknowledgements, the inbound QoS 2 guard, the end of a connection.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { publishSize } from "../../src/session/PacketSize.ts"
import { isExpired, type Message, minQos, type QoS, withQos, withRetain } from "../../src/session/Message.ts"
import {
  type ConnectRequest,
  expiresAt,
  EXPIRY_NEVER,
  type InflightMessage,
  make,
  MAX_PACKET_ID,
  nextDeadline,
  type SessionState
} from "../../src/session/SessionState.ts"
import { SessionStoreError } from "../../src/session/SessionStateProvider.ts"
import * as T from "../../src/session/Transitions.ts"
import { messageArb, messageV5Arb, NOW, packetIdArb, qosArb, sessionStateArb } from "./Arbitraries.ts"
import { CLIENTS, FILTERS } from "./Model.ts"
import { normalizeMessage, normalizeOutgoing, normalizeState } from "./Normalize.ts"
import { params } from "./Props.ts"

const firstStage = (m: Message): InflightMessage["stage"] => (m.qos === 2 ? "pubrec" : "puback")

/** The first id at or after `from` (cycling through 1..65535) not in `used`, found the slow way. */
const firstFree = (from: number, used: ReadonlySet<number>): number => {
  for (let k = 0; k < MAX_PACKET_ID; k++) {
    const id = ((from - 1 + k) % MAX_PACKET_ID) + 1
    if (!used.has(id)) return id
  }
  throw new Error("no free packet id")
}

/** The fields a transition must leave alone, for comparison. */
const untouched = (s: SessionState) => {
  const { inflight: _i, nextPacketId: _n, queue: _q, dropped: _d, ...rest } = normalizeState(s)!
  return rest
}

const requestArb: fc.Arbitrary<ConnectRequest> = fc
  .record({
    clientId: fc.constantFrom(...CLIENTS),
    clean: fc.boolean(),
    expiryInterval: fc.constantFrom(0, 300, EXPIRY_NEVER),
    receiveMaximum: fc.integer({ min: 1, max: 8 }),
    will: fc.option(messageArb(), { nil: undefined })
  })

const limitsArb: fc.Arbitrary<T.Limits> = fc.record({ maxQueuedMessages: fc.integer({ min: 0, max: 6 }), queueQos0: fc.boolean() })

const idsOf = (s: SessionState) => new Set(s.inflight.map((e) => e.packetId))

/** A session and a packet id that is often one of its in-flight ids. */
const stateAndIdArb = sessionStateArb().chain((state) =>
  fc.tuple(
    fc.constant(state),
    state.inflight.length > 0
      ? fc.oneof(fc.constantFrom(...state.inflight.map((e) => e.packetId)), packetIdArb)
      : packetIdArb
  )
)

/** How much of the client's window a session uses: in-flight entries not held back, counted here. */
const windowOf = (s: SessionState): number => s.inflight.filter((e) => e.awaitingResend !== true).length

/** The entry as it is once resent on this connection (no longer held back). */
const sentNow = (e: InflightMessage): InflightMessage => ({ packetId: e.packetId, message: e.message, stage: e.stage })

/** The packet that resends an in-flight entry: PUBREL past PUBREC, else the PUBLISH with DUP=1 and its packet id. */
const resendOf = (e: InflightMessage): T.Outgoing =>
  e.stage === "pubcomp" ? { _tag: "Pubrel", packetId: e.packetId } : { _tag: "Publish", message: e.message, packetId: e.packetId, dup: true }

/**
 * The in-flight entries on resume with a window of `receiveMaximum`, read off the rule: in order,
 * PUBREL-stage ones kept and counted; PUBLISH-stage ones too large dropped, kept and counted while
 * fewer than `receiveMaximum` are counted, else held back (same id and stage, not resent).
 */
const resumedInflight = (
  inflight: ReadonlyArray<InflightMessage>,
  receiveMaximum: number,
  fits: (m: Message) => boolean = () => true
): Array<InflightMessage> => {
  const kept: Array<InflightMessage> = []
  let used = 0
  for (const entry of inflight) {
    if (entry.stage !== "pubcomp" && !fits(entry.message)) continue
    if (entry.stage === "pubcomp" || used < receiveMaximum) {
      kept.push(sentNow(entry))
      used++
    } else {
      kept.push({ ...sentNow(entry), awaitingResend: true })
    }
  }
  return kept
}

/** Whether an offline session has ended at `now` (its expiry passed), and whether its delayed will is due. */
const dueAt = (s: SessionState, now: number) => {
  const ended = s.disconnectedAt !== undefined && s.expiryInterval !== EXPIRY_NEVER && s.disconnectedAt + s.expiryInterval * 1000 <= now
  const willDue = s.disconnectedAt !== undefined && !ended && s.willAt !== undefined && s.willAt <= now
  return { ended, willDue }
}

/** A time at, just before or just after one of the session's deadlines, or anywhere near them. */
const nearDeadlines = (state: SessionState): fc.Arbitrary<number> => {
  const deadlines = [expiresAt(state), state.willAt].filter((t): t is number => t !== undefined)
  const around = deadlines.flatMap((t) => [t - 1, t, t + 1])
  return around.length === 0 ? fc.integer({ min: NOW - 9000, max: NOW + 9000 }) : fc.oneof(
    fc.constantFrom(...around),
    fc.integer({ min: NOW - 9000, max: NOW + 9000 })
  )
}

describe("Transitions (properties)", () => {
  describe("packet ids", () => {
    it("allocatePacketId returns the first id at or after nextPacketId, cycling 1..65535, that is not in flight", () => {
      fc.assert(
        fc.property(sessionStateArb({ maxInflight: 12 }), (state) => {
          const id = T.allocatePacketId(state)
          expect(id).toBeGreaterThanOrEqual(1)
          expect(id).toBeLessThanOrEqual(MAX_PACKET_ID)
          expect(idsOf(state).has(id)).toBe(false)
          expect(id).toBe(firstFree(state.nextPacketId, idsOf(state)))
        }),
        params()
      )
    })

    it("allocatePacketId wraps from 65535 to 1 and skips every id in flight", () => {
      const message: Message = { topic: "t/1", payload: new Uint8Array(), qos: 1, retain: false }
      const holding = (ids: ReadonlyArray<number>, next: number): SessionState => ({
        ...make({ clientId: "a", clean: false, expiryInterval: EXPIRY_NEVER, receiveMaximum: 10, will: undefined }),
        inflight: ids.map((packetId) => ({ packetId, message, stage: "puback" as const })),
        nextPacketId: next
      })
      expect(T.allocatePacketId(holding([65534, 65535, 1], 65534))).toBe(2)
      expect(T.allocatePacketId(holding([], 65535))).toBe(65535)
      expect(T.allocatePacketId(holding([65535], 65535))).toBe(1)
      expect(T.allocatePacketId(holding([5], 4))).toBe(4)
      // sending from nextPacketId 65535 moves the search start back to 1
      const sent = T.deliver(holding([], 65535), message, true, { maxQueuedMessages: 1, queueQos0: false })
      expect(sent.state.inflight.map((e) => e.packetId)).toEqual([65535])
      expect(sent.state.nextPacketId).toBe(1)
    })
  })

  describe("window and queue", () => {
    it("fillWindow resends held-back messages first (DUP=1, same id) while the window has room; once none is held back, queued ones oldest first; the rest stay queued in order", () => {
      fc.assert(
        fc.property(sessionStateArb({ maxQueue: 8, heldBack: true }), (state) => {
          const snapshot = normalizeState(state)
          const { outgoing, state: next } = T.fillWindow(state)
          expect(normalizeState(state)).toEqual(snapshot)
          // the held-back ones first, as the window has room
          let used = windowOf(state)
          const resent: Array<InflightMessage> = []
          const inflight = state.inflight.map((e) => {
            if (e.awaitingResend !== true || used >= state.receiveMaximum) return e
            used++
            resent.push(e)
            return sentNow(e)
          })
          expect(outgoing.slice(0, resent.length).map(normalizeOutgoing)).toEqual(resent.map((e) => normalizeOutgoing(resendOf(e))))
          expect(next.inflight.slice(0, state.inflight.length)).toEqual(inflight)
          const stillHeld = inflight.some((e) => e.awaitingResend === true)
          if (stillHeld) {
            // nothing new while a message is held back: the window is full
            expect(outgoing).toHaveLength(resent.length)
            expect(next.inflight).toHaveLength(state.inflight.length)
            expect(next.queue.toArray()).toEqual(state.queue.toArray())
            expect(windowOf(next)).toBeGreaterThanOrEqual(next.receiveMaximum)
          }
          const fresh = outgoing.slice(resent.length)
          const taken = state.queue.length - next.queue.length
          expect(next.queue.toArray()).toEqual(state.queue.toArray().slice(taken))
          expect(fresh.map((o) => o._tag === "Publish" ? normalizeMessage(o.message) : o)).toEqual(
            state.queue.toArray().slice(0, taken).map(normalizeMessage)
          )
          if (taken === 0 && resent.length === 0) expect(normalizeState(next)).toEqual(snapshot)
          if (taken === 0 && resent.length === 0 && !stillHeld) expect(next).toBe(state)
          const added = next.inflight.slice(state.inflight.length)
          const sentQos12 = state.queue.toArray().slice(0, taken).filter((m) => m.qos > 0)
          expect(added.map((e) => e.message)).toEqual(sentQos12)
          let ids = idsOf(state)
          let from = state.nextPacketId
          for (const [i, o] of fresh.entries()) {
            if (o._tag !== "Publish") throw new Error("fillWindow sent a PUBREL")
            expect(o.dup).toBe(false)
            if (o.message.qos === 0) {
              expect(o.packetId).toBeUndefined()
              continue
            }
            const expectedId = firstFree(from, ids)
            expect([i, o.packetId]).toEqual([i, expectedId])
            expect(added.find((e) => e.packetId === expectedId)?.stage).toBe(firstStage(o.message))
            ids = new Set([...ids, expectedId])
            from = (expectedId % MAX_PACKET_ID) + 1
          }
          expect(next.nextPacketId).toBe(sentQos12.length > 0 ? from : state.nextPacketId)
          expect(windowOf(next)).toBeLessThanOrEqual(Math.max(state.receiveMaximum, windowOf(state)))
          if (next.queue.length > 0) {
            if (!stillHeld) expect(next.queue.at(0)!.qos).toBeGreaterThan(0)
            expect(windowOf(next)).toBeGreaterThanOrEqual(next.receiveMaximum)
          }
          expect(untouched(next)).toEqual(untouched(state))
          expect(next.dropped).toBe(state.dropped)
        }),
        params()
      )
    })

    it("deliver sends a QoS 1/2 message at once exactly when online, nothing is queued or held back and the window has room; QoS 0 online at once", () => {
      fc.assert(
        fc.property(sessionStateArb({ heldBack: true }), messageArb(), fc.boolean(), limitsArb, (state, message, online, limits) => {
          const before = normalizeState(state)
          const { outgoing, state: next } = T.deliver(state, message, online, limits)
          expect(normalizeState(state)).toEqual(before)
          const heldBack = state.inflight.some((e) => e.awaitingResend === true)
          const sendNow = message.qos === 0
            ? online
            : online && state.queue.length === 0 && !heldBack && windowOf(state) < state.receiveMaximum
          if (sendNow) {
            expect(outgoing).toHaveLength(1)
            const o = outgoing[0]!
            if (o._tag !== "Publish") throw new Error("expected PUBLISH")
            expect(o.message).toBe(message)
            expect(o.dup).toBe(false)
            if (message.qos === 0) {
              expect(o.packetId).toBeUndefined()
              expect(next).toBe(state)
            } else {
              const id = firstFree(state.nextPacketId, idsOf(state))
              expect(o.packetId).toBe(id)
              expect(next.inflight).toEqual([...state.inflight, { packetId: id, message, stage: firstStage(message) }])
              expect(next.nextPacketId).toBe((id % MAX_PACKET_ID) + 1)
              expect(next.queue).toBe(state.queue)
            }
          } else {
            expect(outgoing).toEqual([])
            expect(next.inflight).toEqual(state.inflight)
            if (message.qos === 0 && !limits.queueQos0) expect(next).toBe(state)
          }
          expect(untouched(next)).toEqual(untouched(state))
        }),
        params()
      )
    })

    it("offline deliveries keep the newest maxQueuedMessages messages in order and count every dropped one", () => {
      fc.assert(
        fc.property(
          sessionStateArb({ maxQueue: 0 }),
          fc.array(messageArb(), { maxLength: 12 }),
          limitsArb,
          (initial, messages, limits) => {
            let state = initial
            for (const m of messages) {
              const step = T.deliver(state, m, false, limits)
              expect(step.outgoing).toEqual([])
              state = step.state
            }
            const queued = messages.filter((m) => m.qos > 0 || limits.queueQos0)
            const kept = Math.min(queued.length, Math.max(0, limits.maxQueuedMessages))
            expect(state.queue.toArray()).toEqual(queued.slice(queued.length - kept))
            expect(state.dropped).toBe(initial.dropped + queued.length - kept)
            expect(state.inflight).toEqual(initial.inflight)
          }
        ),
        params()
      )
    })
  })

  describe("connect", () => {
    it("clean=1 or no stored session starts an empty session with sessionPresent=0, hands back the stored one as discarded and returns the delayed will still waiting in it", () => {
      fc.assert(
        fc.property(
          fc.option(sessionStateArb({ v5: true }), { nil: undefined }),
          requestArb,
          fc.integer({ min: NOW - 9000, max: NOW + 9000 }),
          (stored, request, now) => {
            fc.pre(request.clean || stored === undefined)
            const result = T.connect(stored, request, now)
            expect(result.sessionPresent).toBe(false)
            // the will of the session that ends here: waiting (or due: the sweep had not come yet), not cancelled
            expect(result.will).toBe(stored?.willAt === undefined ? undefined : stored.will)
            if (stored === undefined) expect(result.discarded).toBeUndefined()
            else expect(normalizeState(result.discarded)?.subscriptions).toEqual(normalizeState(stored)?.subscriptions)
            if (stored !== undefined && dueAt(stored, now).ended) expect(result.discarded).toBe(stored)
            expect(result.outgoing).toEqual([])
            expect(normalizeState(result.state)).toEqual(normalizeState(make(request)))
            expect(result.state.inflight).toEqual([])
            expect(result.state.nextPacketId).toBe(1)
            expect(result.state.disconnectedAt).toBeUndefined()
          }
        ),
        params()
      )
    })

    it("clean=0 resumes the stored session: in-flight messages first, in order, with DUP=1 (PUBREL past PUBREC), then the queue drains into the window", () => {
      fc.assert(
        fc.property(sessionStateArb({ heldBack: true }), requestArb, (stored, request0) => {
          // the window fits what is in flight here (a shrinking window has its own properties below), and nothing is due yet
          const request = { ...request0, clean: false, receiveMaximum: Math.max(request0.receiveMaximum, stored.inflight.length) }
          const now = stored.disconnectedAt ?? 0
          fc.pre(!dueAt(stored, now).ended)
          const snapshot = normalizeState(stored)
          const result = T.connect(stored, request, now)
          expect(normalizeState(stored)).toEqual(snapshot)
          expect(result.sessionPresent).toBe(true)
          expect(result.discarded).toBeUndefined()
          expect(result.will).toBeUndefined()
          const resumed: SessionState = {
            ...stored,
            clean: false,
            expiryInterval: request.expiryInterval,
            receiveMaximum: request.receiveMaximum,
            will: request.will,
            willDelayInterval: 0,
            willAt: undefined,
            maximumPacketSize: undefined,
            disconnectedAt: undefined,
            // all of them are resent: none is held back any more
            inflight: stored.inflight.map(sentNow)
          }
          const filled = T.fillWindow(resumed, now)
          expect(result.outgoing.map(normalizeOutgoing)).toEqual([...stored.inflight.map(resendOf), ...filled.outgoing].map(normalizeOutgoing))
          expect(normalizeState(result.state)).toEqual(normalizeState(filled.state))
          expect(result.state.clean).toBe(false)
          expect(result.state.will).toBe(request.will)
          expect(result.state.disconnectedAt).toBeUndefined()
        }),
        params()
      )
    })

    it("CONNECT applies time first: a session past its expiry has ended before the sweep (sessionPresent=0, discarded, waiting will returned); a due delayed will is returned", () => {
      const offline = sessionStateArb({ v5: true }).filter((s) => s.disconnectedAt !== undefined)
      fc.assert(
        fc.property(
          offline.chain((s) => fc.tuple(fc.constant(s), nearDeadlines(s))),
          requestArb,
          ([stored, now], request0) => {
            const request = { ...request0, clientId: stored.clientId, clean: false }
            const { ended, willDue } = dueAt(stored, now)
            const result = T.connect(stored, request, now)
            expect(result.sessionPresent).toBe(!ended)
            expect(result.discarded).toBe(ended ? stored : undefined)
            // a will that time made due (delay passed, or the session ended with it waiting) is published now
            expect(result.will).toBe((ended || willDue) && stored.willAt !== undefined ? stored.will : undefined)
            if (ended) {
              expect(normalizeState(result.state)).toEqual(normalizeState(make(request)))
              expect(result.outgoing).toEqual([])
            } else {
              // and then it is resumed like any other: with the new connection's will, no delayed one waiting
              const resumed = T.connect({ ...stored, will: undefined, willAt: undefined, disconnectedAt: undefined }, request, now)
              expect(normalizeState(result.state)).toEqual(normalizeState(resumed.state))
              expect(result.outgoing.map(normalizeOutgoing)).toEqual(resumed.outgoing.map(normalizeOutgoing))
            }
          }
        ),
        params()
      )
    })
  })

  describe("acknowledgements", () => {
    it("puback releases the QoS 1 message in flight with that id and refills the window; any other id changes nothing", () => {
      fc.assert(
        fc.property(stateAndIdArb, ([state, id]) => {
          const snapshot = normalizeState(state)
          const index = state.inflight.findIndex((e) => e.packetId === id && e.stage === "puback")
          const result = T.puback(state, id)
          expect(normalizeState(state)).toEqual(snapshot)
          if (index < 0) {
            expect(result.state).toBe(state)
            expect(result.outgoing).toEqual([])
            return
          }
          const released = { ...state, inflight: state.inflight.filter((_, i) => i !== index) }
          const filled = T.fillWindow(released)
          expect(normalizeState(result.state)).toEqual(normalizeState(filled.state))
          expect(result.outgoing.map(normalizeOutgoing)).toEqual(filled.outgoing.map(normalizeOutgoing))
        }),
        params()
      )
    })

    it("pubrec moves a QoS 2 message on to pubcomp and answers PUBREL, again for a duplicate PUBREC; any other id changes nothing", () => {
      fc.assert(
        fc.property(stateAndIdArb, ([state, id]) => {
          const snapshot = normalizeState(state)
          const entry = state.inflight.find((e) => e.packetId === id)
          const result = T.pubrec(state, id)
          expect(normalizeState(state)).toEqual(snapshot)
          if (entry === undefined || entry.stage === "puback") {
            expect(result.state).toBe(state)
            expect(result.outgoing).toEqual([])
            return
          }
          expect(result.outgoing).toEqual([{ _tag: "Pubrel", packetId: id }])
          if (entry.stage === "pubcomp") expect(result.state).toBe(state)
          expect(result.state.inflight).toEqual(
            state.inflight.map((e) => (e.packetId === id ? { ...e, stage: "pubcomp" } : e))
          )
          expect(result.state.queue).toBe(state.queue)
          expect(untouched(result.state)).toEqual(untouched(state))
        }),
        params()
      )
    })

    it("pubcomp releases the message past PUBREC with that id and refills the window; any other id changes nothing", () => {
      fc.assert(
        fc.property(stateAndIdArb, ([state, id]) => {
          const snapshot = normalizeState(state)
          const index = state.inflight.findIndex((e) => e.packetId === id && e.stage === "pubcomp")
          const result = T.pubcomp(state, id)
          expect(normalizeState(state)).toEqual(snapshot)
          if (index < 0) {
            expect(result.state).toBe(state)
            expect(result.outgoing).toEqual([])
            return
          }
          const filled = T.fillWindow({ ...state, inflight: state.inflight.filter((_, i) => i !== index) })
          expect(normalizeState(result.state)).toEqual(normalizeState(filled.state))
          expect(result.outgoing.map(normalizeOutgoing)).toEqual(filled.outgoing.map(normalizeOutgoing))
        }),
        params()
      )
    })
  })

  describe("inbound QoS 2", () => {
    it("receiveQos2 forwards a packet id once until pubrel releases it; pubrel of an unknown id changes nothing", () => {
      const event = fc.record({ pubrel: fc.boolean(), id: fc.integer({ min: 1, max: 3 }) })
      fc.assert(
        fc.property(sessionStateArb(), fc.array(event, { maxLength: 30 }), (initial, events) => {
          let state = initial
          const open = new Set(initial.awaitingPubrel)
          for (const { id, pubrel } of events) {
            if (pubrel) {
              const next = T.pubrel(state, id)
              if (!open.has(id)) expect(next).toBe(state)
              open.delete(id)
              state = next
            } else {
              const { forward, state: next } = T.receiveQos2(state, id)
              expect(forward).toBe(!open.has(id))
              if (!forward) expect(next).toBe(state)
              open.add(id)
              state = next
            }
            expect(new Set(state.awaitingPubrel)).toEqual(open)
            expect(state.awaitingPubrel.length).toBe(open.size)
          }
          expect(untouched({ ...state, awaitingPubrel: initial.awaitingPubrel })).toEqual(untouched(initial))
        }),
        params()
      )
    })
  })

  describe("subscriptions", () => {
    it("subscribe adds or replaces grants and unsubscribe removes filters; a change-free call returns the same state", () => {
      const grant = fc.tuple(fc.constantFrom(...FILTERS), qosArb)
      fc.assert(
        fc.property(
          sessionStateArb(),
          fc.array(grant, { maxLength: 4 }),
          fc.array(fc.constantFrom(...FILTERS), { maxLength: 4 }),
          (state, grants, filters) => {
            const before = normalizeState(state)
            const granted = grants.map(([f, qos]) => [f, { qos }] as const)
            const subscribed = T.subscribe(state, granted)
            const expected = new Map([...state.subscriptions].map(([f, s]) => [f, s.qos]))
            for (const [f, qos] of grants) expected.set(f, qos)
            expect(new Map([...subscribed.subscriptions].map(([f, s]) => [f, s.qos]))).toEqual(expected)
            if (grants.length === 0) expect(subscribed).toBe(state)
            const unsubscribed = T.unsubscribe(subscribed, filters)
            for (const f of filters) expected.delete(f)
            expect(new Map([...unsubscribed.subscriptions].map(([f, s]) => [f, s.qos]))).toEqual(expected)
            if (!filters.some((f) => subscribed.subscriptions.has(f))) expect(unsubscribed).toBe(subscribed)
            // the transitions never mutate the state they are given
            expect(normalizeState(state)).toEqual(before)
          }
        ),
        params()
      )
    })
  })

  describe("end of a connection", () => {
    it("disconnect returns the will only without DISCONNECT; an expiry-0 session ends, a persistent one is kept with disconnectedAt=now and no will", () => {
      fc.assert(
        fc.property(sessionStateArb(), fc.boolean(), fc.nat(), (state0, graceful, now) => {
          const state = { ...state0, willDelayInterval: 0 }
          const snapshot = normalizeState(state)
          const ended = T.disconnect(state, graceful, now)
          expect(normalizeState(state)).toEqual(snapshot)
          expect(ended.will).toBe(graceful ? undefined : state.will)
          if (state.expiryInterval === 0) {
            expect(ended.state).toBeUndefined()
          } else {
            expect(normalizeState(ended.state)).toEqual(normalizeState({ ...state, will: undefined, disconnectedAt: now }))
          }
        }),
        params()
      )
    })
    it("a delayed will (MQTT 5) waits in a persistent session until willAt, unless the session ends with the connection", () => {
      fc.assert(
        fc.property(sessionStateArb(), messageArb(), fc.integer({ min: 1, max: 100 }), fc.nat(), (state0, will, delay, now) => {
          const state = { ...state0, will, willDelayInterval: delay }
          const ended = T.disconnect(state, false, now)
          if (state.expiryInterval === 0) {
            expect(ended).toEqual({ state: undefined, will })
          } else {
            expect(ended.will).toBeUndefined()
            expect(ended.state?.will).toBe(will)
            expect(ended.state?.willAt).toBe(now + delay * 1000)
          }
        }),
        params()
      )
    })
  })

  describe("resume with a smaller window (MQTT 5 Receive Maximum)", () => {
    it("a smaller window on resume resends only what it allows; every in-flight message stays in flight with its packet id and stage, the rest held back, not queued", () => {
      fc.assert(
        fc.property(sessionStateArb({ maxInflight: 8, heldBack: true }), fc.integer({ min: 1, max: 8 }), (stored, window) => {
          const result = T.connect({ ...stored, disconnectedAt: undefined }, {
            clientId: stored.clientId,
            clean: false,
            expiryInterval: stored.expiryInterval,
            receiveMaximum: window,
            will: undefined
          })
          // nothing leaves flight, nothing is renumbered or moves on a stage
          const kept = result.state.inflight.slice(0, stored.inflight.length)
          expect(kept.map((e) => [e.packetId, e.stage, e.message])).toEqual(stored.inflight.map((e) => [e.packetId, e.stage, e.message]))
          // held back: a PUBLISH-stage entry with `window` entries before it resent; PUBREL-stage ones always resent
          expect(kept).toEqual(resumedInflight(stored.inflight, window))
          const heldBack = kept.filter((e) => e.awaitingResend === true)
          const resent = kept.filter((e) => e.awaitingResend !== true)
          expect(result.outgoing.slice(0, resent.length).map(normalizeOutgoing)).toEqual(resent.map((e) => normalizeOutgoing(resendOf(e))))
          expect(result.outgoing.filter((o) => o._tag === "Publish" && o.dup)).toHaveLength(resent.filter((e) => e.stage !== "pubcomp").length)
          expect(resent.filter((e) => e.stage !== "pubcomp").length).toBeLessThanOrEqual(window)
          if (heldBack.length > 0) {
            // the window is full: nothing new goes out and the queue stays as it was
            expect(result.outgoing.filter((o) => o._tag === "Publish" && !o.dup && o.message.qos > 0)).toEqual([])
            expect(result.state.inflight).toHaveLength(stored.inflight.length)
            expect(result.state.queue.toArray()).toEqual(stored.queue.toArray())
          }
        }),
        params()
      )
    })

    it("held-back messages keep their packet ids and are resent (DUP=1, same id) oldest first as the window opens, before anything new; no PUBLISH into a full window", () => {
      const event = fc.oneof(
        fc.record({ ack: fc.nat(7) }),
        fc.record({ deliver: messageArb(fc.constantFrom<QoS>(1, 2)) })
      )
      const limits: T.Limits = { maxQueuedMessages: 8, queueQos0: false }
      fc.assert(
        fc.property(
          sessionStateArb({ maxInflight: 8, maxQueue: 4, heldBack: true }),
          fc.integer({ min: 1, max: 4 }),
          fc.array(event, { maxLength: 30 }),
          (stored, window, events) => {
            const resumed = T.connect({ ...stored, disconnectedAt: undefined }, {
              clientId: stored.clientId,
              clean: false,
              expiryInterval: stored.expiryInterval,
              receiveMaximum: window,
              will: undefined
            })
            let state = resumed.state
            // the packet id each message got when it was first sent (messages are told apart by identity)
            const ids = new Map(stored.inflight.map((e) => [e.message, e.packetId]))
            const check = (before: SessionState, outgoing: ReadonlyArray<T.Outgoing>, after: SessionState) => {
              const owed = before.inflight.filter((e) => e.awaitingResend === true)
              let used = windowOf(after) - outgoing.filter((o) => o._tag === "Publish" && o.message.qos > 0).length
              for (const o of outgoing) {
                if (o._tag !== "Publish" || o.message.qos === 0) continue
                expect(used).toBeLessThan(after.receiveMaximum)
                used++
                if (o.dup) {
                  const oldest = owed.shift()
                  expect([o.packetId, o.message]).toEqual([oldest?.packetId, oldest?.message])
                } else {
                  expect(owed).toEqual([])
                  expect(ids.has(o.message)).toBe(false)
                  ids.set(o.message, o.packetId!)
                }
              }
              for (const e of after.inflight) expect([e.message, e.packetId]).toEqual([e.message, ids.get(e.message)])
              for (const e of after.inflight) if (e.awaitingResend === true) expect(e.stage).not.toBe("pubcomp")
              // nothing waits while the window has room
              if (windowOf(after) < after.receiveMaximum) {
                expect(after.inflight.filter((e) => e.awaitingResend === true)).toEqual([])
                expect(after.queue.toArray().filter((m) => m.qos > 0)).toEqual([])
              }
            }
            // the resume itself: resends of what the window takes, then new messages only if nothing is held back
            const held = state.inflight.some((e) => e.awaitingResend === true)
            for (const o of resumed.outgoing) {
              if (o._tag !== "Publish" || o.dup || o.message.qos === 0) continue
              expect(held).toBe(false)
              ids.set(o.message, o.packetId!)
            }
            check(state, [], state)
            for (const e of events) {
              const before = state
              let step: T.Step
              if ("ack" in e) {
                // the client answers what it was sent on this connection
                const sent = state.inflight.filter((x) => x.awaitingResend !== true)
                if (sent.length === 0) continue
                const entry = sent[e.ack % sent.length]!
                step = entry.stage === "puback"
                  ? T.puback(state, entry.packetId)
                  : entry.stage === "pubrec"
                  ? T.pubrec(state, entry.packetId)
                  : T.pubcomp(state, entry.packetId)
              } else {
                step = T.deliver(state, e.deliver, true, limits)
              }
              state = step.state
              check(before, step.outgoing, state)
            }
          }
        ),
        params()
      )
    })
  })

  describe("MQTT 5: session expiry, delayed wills, message expiry, Maximum Packet Size", () => {
    const offline = sessionStateArb({ v5: true }).filter((s) => s.disconnectedAt !== undefined)
    const tooLargeFor = (state: SessionState, m: Message) =>
      state.maximumPacketSize !== undefined && publishSize(m) > state.maximumPacketSize

    it("expiresAt is disconnectedAt + expiry (none while connected or for never); nextDeadline is the earlier of it and willAt", () => {
      fc.assert(
        fc.property(sessionStateArb({ v5: true }), (state) => {
          const end = state.disconnectedAt === undefined || state.expiryInterval === EXPIRY_NEVER
            ? undefined
            : state.disconnectedAt + state.expiryInterval * 1000
          expect(expiresAt(state)).toBe(end)
          const due = [end, state.willAt].filter((t): t is number => t !== undefined)
          expect(nextDeadline(state)).toBe(due.length === 0 ? undefined : Math.min(...due))
        }),
        params()
      )
    })

    it("expire ends a session past its expiry (with the will still waiting, if any), else publishes a due delayed will once, else changes nothing", () => {
      fc.assert(
        fc.property(offline.chain((s) => fc.tuple(fc.constant(s), nearDeadlines(s))), ([state, now]) => {
          const snapshot = normalizeState(state)
          const result = T.expire(state, now)
          expect(normalizeState(state)).toEqual(snapshot)
          const end = expiresAt(state)
          if (end !== undefined && end <= now) {
            expect(result.state).toBeUndefined()
            expect(result.will).toBe(state.willAt === undefined ? undefined : state.will)
          } else if (state.willAt !== undefined && state.willAt <= now) {
            expect(result.will).toBe(state.will)
            expect(normalizeState(result.state)).toEqual(normalizeState({ ...state, will: undefined, willAt: undefined }))
            // published once: nothing more is due from the will
            expect(T.expire(result.state!, now).will).toBeUndefined()
          } else {
            expect(result.state).toBe(state)
            expect(result.will).toBeUndefined()
          }
        }),
        params()
      )
    })

    it("disconnect: an MQTT 5 DISCONNECT expiry replaces the session's (0 ends it); a will with a delay waits until now + delay unless the session ends", () => {
      const online = sessionStateArb({ v5: true }).map((s) => ({ ...s, willAt: undefined, disconnectedAt: undefined }))
      fc.assert(
        fc.property(
          online,
          fc.boolean(),
          fc.option(fc.constantFrom(0, 2, 300, EXPIRY_NEVER), { nil: undefined }),
          fc.integer({ min: NOW - 9000, max: NOW }),
          (state, graceful, expiryInterval, now) => {
            const snapshot = normalizeState(state)
            const ended = T.disconnect(state, { graceful, expiryInterval }, now)
            expect(normalizeState(state)).toEqual(snapshot)
            const expiry = expiryInterval ?? state.expiryInterval
            const will = graceful ? undefined : state.will
            if (expiry === 0) {
              expect(ended.state).toBeUndefined()
              expect(ended.will).toBe(will)
              return
            }
            const delayed = will !== undefined && state.willDelayInterval > 0
            expect(ended.will).toBe(delayed ? undefined : will)
            expect(normalizeState(ended.state)).toEqual(normalizeState({
              ...state,
              expiryInterval: expiry,
              will: delayed ? will : undefined,
              willAt: delayed ? now + state.willDelayInterval * 1000 : undefined,
              disconnectedAt: now
            }))
          }
        ),
        params()
      )
    })

    it("deliver drops a message that has expired or is larger than the client's Maximum Packet Size: nothing sent, nothing stored", () => {
      fc.assert(
        fc.property(
          sessionStateArb({ v5: true }),
          messageV5Arb(),
          fc.boolean(),
          limitsArb,
          fc.integer({ min: NOW - 3000, max: NOW + 3000 }),
          (state, message, online, limits, anyTime) => {
            // often exactly at the message's expiry
            const now = message.expiresAt !== undefined && anyTime % 3 === 0 ? message.expiresAt : anyTime
            const step = T.deliver(state, message, online, limits, now)
            if (isExpired(message, now) || tooLargeFor(state, message)) {
              expect(step.state).toBe(state)
              expect(step.outgoing).toEqual([])
            } else {
              const plain = T.deliver({ ...state, maximumPacketSize: undefined }, { ...message, expiresAt: undefined }, online, limits, 0)
              expect(step.outgoing.length).toBe(plain.outgoing.length)
              expect(step.state.queue.length).toBe(plain.state.queue.length)
            }
          }
        ),
        params()
      )
    })

    it("fillWindow drops queued messages that expired or are too large as the window reaches them and sends the rest oldest first, after the held-back ones", () => {
      fc.assert(
        fc.property(sessionStateArb({ v5: true, maxQueue: 8 }), fc.integer({ min: NOW - 3000, max: NOW + 3000 }), (state, now) => {
          const { outgoing, state: next } = T.fillWindow(state, now)
          const resent = outgoing.filter((o) => o._tag === "Publish" && o.dup)
          const taken = state.queue.length - next.queue.length
          const reached = state.queue.toArray().slice(0, taken)
          const sendable = reached.filter((m) => !isExpired(m, now) && !tooLargeFor(state, m))
          // (held-back ones went out on an earlier connection: they are resent whatever their expiry)
          expect(outgoing.slice(resent.length).map((o) => (o._tag === "Publish" ? o.message : o))).toEqual(sendable)
          expect(next.queue.toArray()).toEqual(state.queue.toArray().slice(taken))
          const head = next.queue.at(0)
          if (head !== undefined) {
            // it stopped at a QoS 1/2 message it could send but for the full window, or behind a held-back one
            const held = next.inflight.some((e) => e.awaitingResend === true)
            if (!held) expect(isExpired(head, now) || tooLargeFor(state, head) || head.qos === 0).toBe(false)
            expect(windowOf(next)).toBeGreaterThanOrEqual(next.receiveMaximum)
          }
          if (taken === 0 && resent.length === 0) expect(normalizeState(next)).toEqual(normalizeState(state))
        }),
        params()
      )
    })

    it("resume cancels a delayed will not yet due (a due one is returned), drops in-flight PUBLISHes over the new Maximum Packet Size, holds back those beyond the new window", () => {
      fc.assert(
        fc.property(
          offline.chain((s) => fc.tuple(fc.constant(s), nearDeadlines(s))),
          fc.integer({ min: 1, max: 8 }),
          fc.option(fc.integer({ min: 8, max: 40 }), { nil: undefined }),
          fc.option(messageV5Arb(), { nil: undefined }),
          ([stored, now], receiveMaximum, maximumPacketSize, will) => {
            const { ended, willDue } = dueAt(stored, now)
            fc.pre(!ended)
            const request: ConnectRequest = {
              clientId: stored.clientId,
              clean: false,
              expiryInterval: stored.expiryInterval,
              receiveMaximum,
              will,
              maximumPacketSize
            }
            const result = T.connect(stored, request, now)
            expect(result.sessionPresent).toBe(true)
            expect(result.will).toBe(willDue ? stored.will : undefined)
            expect(result.state.will).toBe(will)
            expect(result.state.willAt).toBeUndefined()
            expect(result.state.willDelayInterval).toBe(0)
            expect(result.state.maximumPacketSize).toBe(maximumPacketSize)
            const fits = (m: Message) => maximumPacketSize === undefined || publishSize(m) <= maximumPacketSize
            const inflight = resumedInflight(stored.inflight, receiveMaximum, fits)
            const resent = inflight.filter((e) => e.awaitingResend !== true)
            expect(result.state.inflight.slice(0, inflight.length)).toEqual(inflight)
            expect(result.outgoing.slice(0, resent.length).map(normalizeOutgoing)).toEqual(resent.map((e) => normalizeOutgoing(resendOf(e))))
            const filled = T.fillWindow(
              { ...stored, ...request, willDelayInterval: 0, willAt: undefined, disconnectedAt: undefined, inflight },
              now
            )
            expect(normalizeState(result.state)).toEqual(normalizeState(filled.state))
            expect(result.outgoing.slice(resent.length).map(normalizeOutgoing)).toEqual(filled.outgoing.map(normalizeOutgoing))
          }
        ),
        params()
      )
    })
  })

  describe("messages and errors", () => {
    it("withQos, withRetain return the same message when nothing changes, a copy otherwise; minQos is the lower QoS", () => {
      fc.assert(
        fc.property(messageArb(), qosArb, fc.boolean(), (message, qos, retain) => {
          const q = withQos(message, qos)
          expect(q.qos).toBe(qos)
          if (qos === message.qos) expect(q).toBe(message)
          else expect({ ...q, qos: message.qos }).toEqual(message)
          const r = withRetain(message, retain)
          expect(r.retain).toBe(retain)
          if (retain === message.retain) expect(r).toBe(message)
          else expect({ ...r, retain: message.retain }).toEqual(message)
          expect(minQos(message.qos, qos)).toBe(Math.min(message.qos, qos) as QoS)
        }),
        params()
      )
    })

    it("SessionStoreError is tagged and carries the operation, the client id and the cause", () => {
      const cause = new Error("disk full")
      const error = new SessionStoreError({ operation: "store", clientId: "a", cause })
      expect(error._tag).toBe("SessionStoreError")
      expect([error.operation, error.clientId, error.cause]).toEqual(["store", "a", cause])
    })
  })
})
