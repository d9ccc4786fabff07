/**
 * Properties of the pure transitions on arbitrary well-formed sessions, each stated against a
 * direct reading of the rule (not against the model): packet id allocation, the window, the queue
 * bound, resume, acknowledgements, the inbound QoS 2 guard, the end of a connection.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { publishSize } from "../../src/protocol/PacketSize.ts"
import { isExpired, type Message, minQos, type QoS, withQos, withRetain } from "../../src/session/Message.ts"
import { MessageQueue } from "../../src/session/MessageQueue.ts"
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
    it("fillWindow sends queued messages oldest first while the window has room and leaves the rest queued in order", () => {
      fc.assert(
        fc.property(sessionStateArb({ maxQueue: 8 }), (state) => {
          const snapshot = normalizeState(state)
          const { outgoing, state: next } = T.fillWindow(state)
          expect(normalizeState(state)).toEqual(snapshot)
          const taken = state.queue.length - next.queue.length
          expect(next.queue.toArray()).toEqual(state.queue.toArray().slice(taken))
          expect(outgoing.map((o) => o._tag === "Publish" ? normalizeMessage(o.message) : o)).toEqual(
            state.queue.toArray().slice(0, taken).map(normalizeMessage)
          )
          if (taken === 0) expect(next).toBe(state)
          const added = next.inflight.slice(state.inflight.length)
          expect(next.inflight.slice(0, state.inflight.length)).toEqual(state.inflight)
          const sentQos12 = state.queue.toArray().slice(0, taken).filter((m) => m.qos > 0)
          expect(added.map((e) => e.message)).toEqual(sentQos12)
          let used = idsOf(state)
          let from = state.nextPacketId
          for (const [i, o] of outgoing.entries()) {
            if (o._tag !== "Publish") throw new Error("fillWindow sent a PUBREL")
            expect(o.dup).toBe(false)
            if (o.message.qos === 0) {
              expect(o.packetId).toBeUndefined()
              continue
            }
            const expectedId = firstFree(from, used)
            expect([i, o.packetId]).toEqual([i, expectedId])
            expect(added.find((e) => e.packetId === expectedId)?.stage).toBe(firstStage(o.message))
            used = new Set([...used, expectedId])
            from = (expectedId % MAX_PACKET_ID) + 1
          }
          expect(next.nextPacketId).toBe(sentQos12.length > 0 ? from : state.nextPacketId)
          expect(next.inflight.length).toBeLessThanOrEqual(Math.max(state.receiveMaximum, state.inflight.length))
          if (next.queue.length > 0) {
            expect(next.queue.at(0)!.qos).toBeGreaterThan(0)
            expect(next.inflight.length).toBeGreaterThanOrEqual(next.receiveMaximum)
          }
          expect(untouched(next)).toEqual(untouched(state))
          expect(next.dropped).toBe(state.dropped)
        }),
        params()
      )
    })

    it("deliver sends a QoS 1/2 message at once exactly when online, nothing is queued and the window has room; QoS 0 online at once", () => {
      fc.assert(
        fc.property(sessionStateArb(), messageArb(), fc.boolean(), limitsArb, (state, message, online, limits) => {
          const before = normalizeState(state)
          const { outgoing, state: next } = T.deliver(state, message, online, limits)
          expect(normalizeState(state)).toEqual(before)
          const sendNow = message.qos === 0
            ? online
            : online && state.queue.length === 0 && state.inflight.length < state.receiveMaximum
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
    it("clean=1 or no stored session starts an empty session with sessionPresent=0 and hands back the stored one as discarded", () => {
      fc.assert(
        fc.property(fc.option(sessionStateArb(), { nil: undefined }), requestArb, (stored, request) => {
          fc.pre(request.clean || stored === undefined)
          const result = T.connect(stored, request)
          expect(result.sessionPresent).toBe(false)
          expect(result.discarded).toBe(stored)
          expect(result.outgoing).toEqual([])
          expect(normalizeState(result.state)).toEqual(normalizeState(make(request)))
          expect(result.state.inflight).toEqual([])
          expect(result.state.nextPacketId).toBe(1)
          expect(result.state.disconnectedAt).toBeUndefined()
        }),
        params()
      )
    })

    it("clean=0 resumes the stored session: in-flight messages first, in order, with DUP=1 (PUBREL past PUBREC), then the queue drains into the window", () => {
      fc.assert(
        fc.property(sessionStateArb(), requestArb, (stored, request0) => {
          // the window fits what is in flight here; a shrinking window has its own property below
          const request = { ...request0, clean: false, receiveMaximum: Math.max(request0.receiveMaximum, stored.inflight.length) }
          const snapshot = normalizeState(stored)
          const result = T.connect(stored, request)
          expect(normalizeState(stored)).toEqual(snapshot)
          expect(result.sessionPresent).toBe(true)
          expect(result.discarded).toBeUndefined()
          const resumed: SessionState = {
            ...stored,
            clean: false,
            expiryInterval: request.expiryInterval,
            receiveMaximum: request.receiveMaximum,
            will: request.will,
            willDelayInterval: 0,
            willAt: undefined,
            maximumPacketSize: undefined,
            disconnectedAt: undefined
          }
          const resend: Array<T.Outgoing> = stored.inflight.map((e) =>
            e.stage === "pubcomp"
              ? { _tag: "Pubrel", packetId: e.packetId }
              : { _tag: "Publish", message: e.message, packetId: e.packetId, dup: true }
          )
          const filled = T.fillWindow(resumed)
          expect(result.outgoing.map(normalizeOutgoing)).toEqual([...resend, ...filled.outgoing].map(normalizeOutgoing))
          expect(normalizeState(result.state)).toEqual(normalizeState(filled.state))
          expect(result.state.clean).toBe(false)
          expect(result.state.will).toBe(request.will)
          expect(result.state.disconnectedAt).toBeUndefined()
        }),
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
    it("a smaller window on resume sends no more than it allows and returns the newest unacknowledged PUBLISHes to the queue head, in order", () => {
      fc.assert(
        fc.property(sessionStateArb({ maxInflight: 8 }), fc.integer({ min: 1, max: 8 }), (stored, window) => {
          const result = T.connect(stored, {
            clientId: stored.clientId,
            clean: false,
            expiryInterval: stored.expiryInterval,
            receiveMaximum: window,
            will: undefined
          })
          const resent = result.outgoing.filter((o) => o._tag === "Publish" && o.dup)
          expect(resent.length).toBeLessThanOrEqual(window)
          // nothing is lost: every message in flight before is in flight or queued after
          const after = [...result.state.inflight.map((e) => e.message), ...result.state.queue.toArray()]
          for (const entry of stored.inflight) expect(after).toContain(entry.message)
          // the PUBLISHes kept in flight fit the window (PUBREL-stage entries are always kept: their PUBLISH was received)
          expect(result.state.inflight.filter((e) => e.stage !== "pubcomp").length).toBeLessThanOrEqual(window)
          const requeued = stored.inflight.filter((e) => e.stage !== "pubcomp" && !result.state.inflight.includes(e))
          expect(result.state.queue.toArray().slice(0, requeued.length)).toEqual(requeued.map((e) => e.message))
        }),
        params()
      )
    })
  })

  describe("MQTT 5: session expiry, delayed wills, message expiry, Maximum Packet Size", () => {
    /** A time at, just before or just after one of the session's deadlines, or anywhere near them. */
    const nearDeadlines = (state: SessionState): fc.Arbitrary<number> => {
      const deadlines = [expiresAt(state), state.willAt].filter((t): t is number => t !== undefined)
      const around = deadlines.flatMap((t) => [t - 1, t, t + 1])
      return around.length === 0 ? fc.integer({ min: NOW - 9000, max: NOW + 9000 }) : fc.oneof(
        fc.constantFrom(...around),
        fc.integer({ min: NOW - 9000, max: NOW + 9000 })
      )
    }
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

    it("fillWindow drops queued messages that expired or are too large as the window reaches them and sends the rest oldest first", () => {
      fc.assert(
        fc.property(sessionStateArb({ v5: true, maxQueue: 8 }), fc.integer({ min: NOW - 3000, max: NOW + 3000 }), (state, now) => {
          const { outgoing, state: next } = T.fillWindow(state, now)
          const taken = state.queue.length - next.queue.length
          const reached = state.queue.toArray().slice(0, taken)
          const sendable = reached.filter((m) => !isExpired(m, now) && !tooLargeFor(state, m))
          expect(outgoing.map((o) => (o._tag === "Publish" ? o.message : o))).toEqual(sendable)
          expect(next.queue.toArray()).toEqual(state.queue.toArray().slice(taken))
          const head = next.queue.at(0)
          if (head !== undefined) {
            // it stopped at a QoS 1/2 message it could send but for the full window
            expect(isExpired(head, now) || tooLargeFor(state, head) || head.qos === 0).toBe(false)
            expect(next.inflight.length).toBeGreaterThanOrEqual(next.receiveMaximum)
          }
          if (taken === 0) expect(next).toBe(state)
        }),
        params()
      )
    })

    it("resume cancels a waiting delayed will, drops in-flight PUBLISHes over the new Maximum Packet Size and moves the newest beyond the new Receive Maximum back to the queue head", () => {
      fc.assert(
        fc.property(
          offline,
          fc.integer({ min: 1, max: 8 }),
          fc.option(fc.integer({ min: 8, max: 40 }), { nil: undefined }),
          fc.option(messageV5Arb(), { nil: undefined }),
          (stored, receiveMaximum, maximumPacketSize, will) => {
            const request: ConnectRequest = {
              clientId: stored.clientId,
              clean: false,
              expiryInterval: stored.expiryInterval,
              receiveMaximum,
              will,
              maximumPacketSize
            }
            const result = T.connect(stored, request, NOW)
            expect(result.state.will).toBe(will)
            expect(result.state.willAt).toBeUndefined()
            expect(result.state.willDelayInterval).toBe(0)
            expect(result.state.maximumPacketSize).toBe(maximumPacketSize)
            const fits = (m: Message) => maximumPacketSize === undefined || publishSize(m) <= maximumPacketSize
            const kept: Array<InflightMessage> = []
            const movedBack: Array<Message> = []
            for (const entry of stored.inflight) {
              if (entry.stage === "pubcomp") kept.push(entry)
              else if (!fits(entry.message)) continue
              else if (kept.length < receiveMaximum) kept.push(entry)
              else movedBack.push(entry.message)
            }
            expect(result.state.inflight.slice(0, kept.length)).toEqual(kept)
            expect(result.outgoing.slice(0, kept.length).map(normalizeOutgoing)).toEqual(
              kept.map((e) =>
                normalizeOutgoing(
                  e.stage === "pubcomp" ? { _tag: "Pubrel", packetId: e.packetId } : { _tag: "Publish", message: e.message, packetId: e.packetId, dup: true }
                )
              )
            )
            const filled = T.fillWindow(
              { ...stored, ...request, willDelayInterval: 0, willAt: undefined, disconnectedAt: undefined, inflight: kept, queue: MessageQueue.from([...movedBack, ...stored.queue]) },
              NOW
            )
            expect(normalizeState(result.state)).toEqual(normalizeState(filled.state))
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
