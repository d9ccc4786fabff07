import { describe, expect, it } from "@effect/vitest"
import type { Message, QoS } from "../../src/session/Message.ts"
import * as SessionState from "../../src/session/SessionState.ts"
import * as Transitions from "../../src/session/Transitions.ts"

const limits: Transitions.Limits = { maxQueuedMessages: 3, queueQos0: false }
const message = (n: number, qos: QoS = 1): Message => ({ topic: `t/${n}`, payload: Buffer.from(String(n)), qos, retain: false })
const request = (over: Partial<SessionState.ConnectRequest> = {}): SessionState.ConnectRequest => ({
  clientId: "c",
  clean: false,
  expiryInterval: SessionState.EXPIRY_NEVER,
  receiveMaximum: 2,
  will: undefined,
  ...over
})
const fresh = () => Transitions.connect(undefined, request()).state

describe("Transitions", () => {
  it("connect without a stored session starts a new one and reports sessionPresent=false", () => {
    const result = Transitions.connect(undefined, request())
    expect(result.sessionPresent).toBe(false)
    expect(result.state.subscriptions.size).toBe(0)
  })

  it("connect with clean=1 discards the stored session", () => {
    const stored = Transitions.subscribe(fresh(), [["a", { qos: 1 }]])
    const result = Transitions.connect(stored, request({ clean: true }))
    expect(result.sessionPresent).toBe(false)
    expect(result.discarded).toBe(stored)
    expect(result.state.subscriptions.size).toBe(0)
  })

  it("resume resends in-flight messages with DUP in order, PUBREL for those past PUBREC, then drains the queue", () => {
    let state = fresh()
    state = Transitions.deliver(state, message(1, 2), true, limits).state
    state = Transitions.deliver(state, message(2, 1), true, limits).state
    state = Transitions.deliver(state, message(3, 1), true, limits).state // window of 2: queued
    state = Transitions.pubrec(state, 1).state
    const ended = Transitions.disconnect(state, false, 10)
    const resumed = Transitions.connect(ended.state, request({ receiveMaximum: 5 }))
    expect(resumed.sessionPresent).toBe(true)
    expect(resumed.outgoing).toEqual([
      { _tag: "Pubrel", packetId: 1 },
      { _tag: "Publish", message: message(2, 1), packetId: 2, dup: true },
      { _tag: "Publish", message: message(3, 1), packetId: 3, dup: false }
    ])
    expect(resumed.state.queue.toArray()).toEqual([])
  })

  it("deliver queues when the window is full and a PUBACK lets the next one in", () => {
    let state = fresh()
    for (const n of [1, 2, 3]) state = Transitions.deliver(state, message(n), true, limits).state
    expect(state.inflight.map((entry) => entry.packetId)).toEqual([1, 2])
    expect(state.queue.toArray()).toEqual([message(3)])
    const acked = Transitions.puback(state, 1)
    expect(acked.outgoing).toEqual([{ _tag: "Publish", message: message(3), packetId: 3, dup: false }])
    expect(acked.state.inflight.map((entry) => entry.packetId)).toEqual([2, 3])
  })

  it("the queue drops the oldest message when full and counts it", () => {
    let state = fresh()
    for (const n of [1, 2, 3, 4, 5]) state = Transitions.deliver(state, message(n), false, limits).state
    expect(state.queue.toArray().map((m) => m.topic)).toEqual(["t/3", "t/4", "t/5"])
    expect(state.dropped).toBe(2)
  })

  it("QoS 0 is not queued for an offline client unless configured", () => {
    const state = fresh()
    expect(Transitions.deliver(state, message(1, 0), false, limits).state.queue.toArray()).toEqual([])
    expect(Transitions.deliver(state, message(1, 0), false, { ...limits, queueQos0: true }).state.queue.toArray()).toEqual([message(1, 0)])
  })

  it("packet ids skip ids still in flight and wrap after 65535", () => {
    const state: SessionState.SessionState = {
      ...fresh(),
      nextPacketId: 65535,
      inflight: [{ packetId: 65535, message: message(0), stage: "puback" }, { packetId: 1, message: message(0), stage: "puback" }]
    }
    expect(Transitions.allocatePacketId(state)).toBe(2)
  })

  it("a duplicate PUBREC re-sends PUBREL and an unknown PUBACK changes nothing", () => {
    let state = Transitions.deliver(fresh(), message(1, 2), true, limits).state
    state = Transitions.pubrec(state, 1).state
    expect(Transitions.pubrec(state, 1).outgoing).toEqual([{ _tag: "Pubrel", packetId: 1 }])
    expect(Transitions.puback(state, 99).state).toBe(state)
    expect(Transitions.pubcomp(state, 1).state.inflight).toEqual([])
  })

  it("an inbound QoS 2 id is forwarded once until PUBREL releases it", () => {
    const first = Transitions.receiveQos2(fresh(), 7)
    expect(first.forward).toBe(true)
    expect(Transitions.receiveQos2(first.state, 7).forward).toBe(false)
    const released = Transitions.pubrel(first.state, 7)
    expect(Transitions.receiveQos2(released, 7).forward).toBe(true)
  })

  it("disconnect removes a clean session, keeps a persistent one, and returns the will only when not graceful", () => {
    const will = message(9)
    const clean = Transitions.connect(undefined, request({ clean: true, expiryInterval: 0, will })).state
    expect(Transitions.disconnect(clean, true, 1)).toEqual({ state: undefined, will: undefined })
    expect(Transitions.disconnect(clean, false, 1).will).toBe(will)
    const persistent = Transitions.connect(undefined, request({ will })).state
    const ended = Transitions.disconnect(persistent, false, 5)
    expect(ended.will).toBe(will)
    expect(ended.state?.disconnectedAt).toBe(5)
    expect(ended.state?.will).toBeUndefined()
  })
})
