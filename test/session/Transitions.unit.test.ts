import { describe, expect, it } from "@effect/vitest"
import * as MemorySessionStateProvider from "../../src/session/MemorySessionStateProvider.ts"
import type { Message, QoS } from "../../src/session/Message.ts"
import * as SessionState from "../../src/session/SessionState.ts"
import * as Transitions from "../../src/session/Transitions.ts"
import type { Command, ConnectSpec, Scenario } from "./Commands.ts"
import { Check, runScenario } from "./Harness.ts"
import { NEVER } from "./Model.ts"

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

describe("MQTT 5: resume with a smaller window, CONNECT after a deadline", () => {
  const v5 = (client: number, receiveMaximum: number, over: Partial<ConnectSpec> = {}): Command => ({
    _tag: "Connect",
    client,
    version: 5,
    clean: false,
    expiryInterval: NEVER,
    receiveMaximum,
    maximumPacketSize: undefined,
    will: undefined,
    ...over
  })
  const publishQos2: Command = { _tag: "Publish", topic: "t/1", qos: 2, retain: false, expiresIn: undefined, pad: 0 }
  const v5Request = (over: Partial<SessionState.ConnectRequest> = {}) => request({ expiryInterval: 2, receiveMaximum: 1, ...over })
  const will = message(9)

  it("a QoS 2 PUBLISH held back by a smaller Receive Maximum keeps its packet id and is re-sent with DUP, never delivered twice", async () => {
    // the transitions: p1 keeps id 2 while held back, and goes out again as id 2 with DUP before anything new
    let state = fresh()
    state = Transitions.deliver(state, message(0, 2), true, limits).state
    state = Transitions.deliver(state, message(1, 2), true, limits).state
    const resumed = Transitions.connect(Transitions.disconnect(state, false, 0).state, request({ receiveMaximum: 1 }))
    expect(resumed.outgoing).toEqual([{ _tag: "Publish", message: message(0, 2), packetId: 1, dup: true }])
    expect(resumed.state.inflight).toEqual([
      { packetId: 1, message: message(0, 2), stage: "pubrec" },
      { packetId: 2, message: message(1, 2), stage: "pubrec", awaitingResend: true }
    ])
    state = Transitions.deliver(resumed.state, message(2, 1), true, limits).state // behind the held-back one: queued
    expect(state.queue.toArray()).toEqual([message(2, 1)])
    expect(Transitions.pubrec(state, 1).outgoing).toEqual([{ _tag: "Pubrel", packetId: 1 }])
    const completed = Transitions.pubcomp(Transitions.pubrec(state, 1).state, 1)
    expect(completed.outgoing).toEqual([{ _tag: "Publish", message: message(1, 2), packetId: 2, dup: true }])
    expect(completed.state.inflight).toEqual([{ packetId: 2, message: message(1, 2), stage: "pubrec" }])
    const next = Transitions.pubcomp(Transitions.pubrec(completed.state, 2).state, 2)
    expect(next.outgoing).toEqual([{ _tag: "Publish", message: message(2, 1), packetId: 3, dup: false }])
    // and through the Sessions service, with every check of the suite (the client keeps the ids it holds across the reconnect)
    const scenario: Scenario = {
      maxQueuedMessages: 4,
      queueQos0: false,
      receiveMaximum: 2,
      persistentSessionExpiry: NEVER,
      commands: [
        v5(0, 2),
        { _tag: "Subscribe", client: 0, filter: "t/1", qos: 2 },
        publishQos2, // p0: in flight as id 1
        publishQos2, // p1: in flight as id 2; the client receives it and hands it to its application
        { _tag: "ConnectionLost", client: 0 },
        v5(0, 1), // resume with Receive Maximum 1: p0 resent (id 1, DUP), p1 held back with id 2
        publishQos2, // p2: queued behind p1
        { _tag: "Ack", client: 0, target: { held: 0 } }, // PUBREC(1) → PUBREL(1)
        { _tag: "Ack", client: 0, target: { held: 0 } }, // PUBCOMP(1) → p1 resent as id 2, DUP=1: the client discards it as a duplicate
        { _tag: "AckAll", client: 0 }, // PUBREC(2) → PUBREL(2)
        { _tag: "AckAll", client: 0 } // PUBCOMP(2) → p2 sent as id 3
      ]
    }
    await runScenario(MemorySessionStateProvider.layer, scenario)
  })

  it("a CONNECT after the session's expiry, before the broker's sweep, starts a new session (sessionPresent=0, old one discarded) and publishes its waiting will", async () => {
    const online = Transitions.connect(undefined, v5Request({ will, willDelayInterval: 1 }), 0).state
    const offline = Transitions.disconnect(online, false, 0)
    expect(offline.will).toBeUndefined()
    expect(SessionState.nextDeadline(offline.state!)).toBe(1000) // the will is due at 1 s, the session ends at 2 s
    const late = Transitions.connect(offline.state, v5Request(), 2100)
    expect(late.sessionPresent).toBe(false)
    expect(late.discarded).toBe(offline.state) // its subscriptions leave the router
    expect(late.will).toBe(will)
    expect(late.state).toEqual(Transitions.connect(undefined, v5Request(), 2100).state)
    // and through the Sessions service, the deadline passing without a sweep
    await runScenario(MemorySessionStateProvider.layer, {
      maxQueuedMessages: 4,
      queueQos0: false,
      receiveMaximum: 2,
      persistentSessionExpiry: NEVER,
      commands: [
        v5(0, 1, { expiryInterval: 2, will: { topic: "t/1", qos: 1, retain: false, delay: 1 } }),
        { _tag: "Subscribe", client: 0, filter: "t/1", qos: 1 },
        { _tag: "ConnectionLost", client: 0 },
        { _tag: "Tick", ms: 2100, sweep: false },
        v5(0, 1, { expiryInterval: 2 })
      ]
    })
  })

  it("a CONNECT after a delayed will was due but before the broker's sweep resumes the session and publishes the will, once", () => {
    const online = Transitions.subscribe(Transitions.connect(undefined, v5Request({ expiryInterval: 10, will, willDelayInterval: 1 }), 0).state, [["t/#", { qos: 1 }]])
    const offline = Transitions.disconnect(online, false, 0).state!
    const late = Transitions.connect(offline, v5Request({ expiryInterval: 10 }), 1500)
    expect(late.sessionPresent).toBe(true)
    expect(late.discarded).toBeUndefined()
    expect(late.will).toBe(will)
    expect(late.state.will).toBeUndefined()
    expect(late.state.willAt).toBeUndefined()
    expect([...late.state.subscriptions.keys()]).toEqual(["t/#"])
    // a CONNECT before it was due cancels it instead
    const early = Transitions.connect(offline, v5Request({ expiryInterval: 10 }), 999)
    expect([early.sessionPresent, early.will, early.state.willAt]).toEqual([true, undefined, undefined])
  })

  it("clean start ending a stored session whose delayed will is still waiting hands that will back to publish", () => {
    const online = Transitions.connect(undefined, v5Request({ expiryInterval: 10, will, willDelayInterval: 5 }), 0).state
    const offline = Transitions.disconnect(online, false, 0).state!
    const clean = Transitions.connect(offline, v5Request({ clean: true, expiryInterval: 10 }), 1000)
    expect([clean.sessionPresent, clean.discarded, clean.will]).toEqual([false, offline, will])
  })
})

describe("a PUBREC for a message held back on resume", () => {
  it(
    "a QoS 2 message held back by a smaller window and acknowledged with PUBREC moves to PUBREL and is never sent again as a PUBLISH",
    async () => {
      let state = fresh()
      state = Transitions.deliver(state, message(0, 2), true, limits).state
      state = Transitions.deliver(state, message(1, 2), true, limits).state
      state = Transitions.connect(Transitions.disconnect(state, false, 0).state, request({ receiveMaximum: 1 })).state
      // the client received p1 (id 2) on the earlier connection and sends its PUBREC on this one
      const pubrec = Transitions.pubrec(state, 2)
      expect(pubrec.outgoing).toEqual([{ _tag: "Pubrel", packetId: 2 }])
      expect(pubrec.state.inflight[1]).toEqual({ packetId: 2, message: message(1, 2), stage: "pubcomp" })
      const opened = Transitions.pubcomp(Transitions.pubrec(pubrec.state, 1).state, 1)
      expect(opened.outgoing).toEqual([])
      const scenario: Scenario = {
        maxQueuedMessages: 4,
        queueQos0: false,
        receiveMaximum: 2,
        persistentSessionExpiry: NEVER,
        commands: [
          { _tag: "Connect", client: 0, version: 5, clean: false, expiryInterval: NEVER, receiveMaximum: 2, maximumPacketSize: undefined, will: undefined },
          { _tag: "Subscribe", client: 0, filter: "t/1", qos: 2 },
          { _tag: "Publish", topic: "t/1", qos: 2, retain: false, expiresIn: undefined, pad: 0 },
          { _tag: "Publish", topic: "t/1", qos: 2, retain: false, expiresIn: undefined, pad: 0 },
          { _tag: "ConnectionLost", client: 0 },
          { _tag: "Connect", client: 0, version: 5, clean: false, expiryInterval: NEVER, receiveMaximum: 1, maximumPacketSize: undefined, will: undefined },
          { _tag: "RawAck", client: 0, kind: "pubrec", target: { raw: 2 } }
        ]
      }
      await runScenario(MemorySessionStateProvider.layer, scenario)
    }
  )
})
