/**
 * Tests of the test suite itself: the checks must be able to fail. A provider with a non-atomic
 * `modify` is correct sequentially, so it passes the model properties, and must fail the
 * concurrency property; the tiny topic matcher of the test router follows the MQTT rules.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { publishSize } from "../../src/session/PacketSize.ts"
import * as MemorySessionStateProvider from "../../src/session/MemorySessionStateProvider.ts"
import { EXPIRY_NEVER } from "../../src/session/SessionState.ts"
import { balanced, type Scenario, scenarioArbitrary, showCommand } from "./Commands.ts"
import { concurrencyPlanArbitrary } from "./Concurrency.ts"
import { replay, runScenario, sessionsOver } from "./Harness.ts"
import { NEVER, packetSize, START, topicMatches } from "./Model.ts"
import { toMessage } from "./Normalize.ts"
import * as NaiveProvider from "./NaiveProvider.ts"
import { params, timeout } from "./Props.ts"
import { modelProperties, runPlan } from "./SessionModel.ts"

describe("the session suite itself", () => {
  it.each([
    ["t/1", "t/1", true],
    ["t/1", "t/2", false],
    ["t/+", "t/1", true],
    ["t/+", "u/1", false],
    ["+/1", "u/1", true],
    ["+/1", "t/2", false],
    ["+/+", "t/2", true],
    ["+", "t/1", false],
    ["t/#", "t/1", true],
    ["t/#", "t", true],
    ["t/#", "u/1", false],
    ["#", "u/1", true]
  ] as const)("the test router's matcher: %s matches %s is %s", (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected)
  })

  it("a read-then-write provider passes the sequential model properties", async () => {
    await fc.assert(
      fc.asyncProperty(
        scenarioArbitrary({ weights: balanced, maxCommands: 60, maxReceiveMaximum: 3, maxQueued: 4 }),
        (scenario) => runScenario(NaiveProvider.layer, scenario)
      ),
      params(0.25)
    )
  }, timeout(0.25))

  it("a read-then-write provider fails the concurrency property (lost updates are detected)", async () => {
    const details = await fc.check(fc.asyncProperty(concurrencyPlanArbitrary, (plan) => runPlan(NaiveProvider.layer, plan)), {
      numRuns: 200,
      seed: 42
    })
    expect(details.failed).toBe(true)
    expect(String(details.errorInstance)).toMatch(/ConcurrencyViolation/)
  })

  it("the memory provider passes the same concurrency runs", async () => {
    const details = await fc.check(
      fc.asyncProperty(concurrencyPlanArbitrary, (plan) => runPlan(MemorySessionStateProvider.layer, plan)),
      { numRuns: 200, seed: 42 }
    )
    expect(details.failed).toBe(false)
  })

  it("a wrong acknowledgement of a held-back message leaves it owed: it is still resent with DUP and its id as the window opens", async () => {
    // PUBACK(2) names a QoS 2 message a smaller window held back: the broker ignores it, so when
    // PUBACK(1) opens the window the oldest held-back message (p2, id 2) is the one resent
    const c = { client: 2, version: 5, clean: false, maximumPacketSize: undefined, will: undefined } as const
    const scenario: Scenario = {
      maxQueuedMessages: 1,
      queueQos0: false,
      receiveMaximum: 1,
      persistentSessionExpiry: NEVER,
      commands: [
        { _tag: "Connect", ...c, expiryInterval: 5, receiveMaximum: 1 },
        { _tag: "Subscribe", client: 2, filter: "t/1", qos: 2 },
        { _tag: "Publish", topic: "t/1", qos: 1, retain: false, expiresIn: undefined, pad: 1 },
        { _tag: "Connect", ...c, expiryInterval: 2, receiveMaximum: 3 },
        {
          _tag: "Connect",
          client: 0,
          version: 4,
          clean: true,
          expiryInterval: 0,
          receiveMaximum: 1,
          maximumPacketSize: undefined,
          will: { topic: "t/1", qos: 2, retain: false, delay: 0 }
        },
        { _tag: "Publish", topic: "t/1", qos: 2, retain: false, expiresIn: 1, pad: 1 },
        { _tag: "ConnectionLost", client: 0 },
        // in flight: 1 (q1), 2 (q2), 3 (the will, q2); a window of 1 holds 2 and 3 back
        { _tag: "Connect", ...c, expiryInterval: 0, receiveMaximum: 1 },
        { _tag: "RawAck", client: 2, kind: "puback", target: { raw: 2 } },
        { _tag: "AckAll", client: 2 }
      ]
    }
    await runScenario(MemorySessionStateProvider.layer, scenario)
  })

  it("the generated scenarios reach every situation the invariants are about", async () => {
    const stats = new Map<string, number>()
    for (const property of modelProperties) {
      for (const scenario of fc.sample(scenarioArbitrary(property.shape), { numRuns: 20, seed: 11 })) {
        const limits = { maxQueuedMessages: scenario.maxQueuedMessages, queueQos0: scenario.queueQos0 }
        await Effect.runPromise(replay(scenario, { stats }).pipe(Effect.provide(sessionsOver(MemorySessionStateProvider.layer, limits))))
      }
    }
    for (
      const situation of [
        "takeover",
        "session ended with its connection",
        "session kept after its connection",
        "session expired by time",
        "MQTT 5 clean start with a session expiry",
        "MQTT 5 clean start 0 with expiry 0",
        "DISCONNECT set a session expiry",
        "DISCONNECT with will (0x04)",
        "DISCONNECT raising expiry 0: protocol error",
        "delayed will waiting",
        "delayed will published by the sweep",
        "will published as the session expired",
        "delayed will cancelled by a resuming reconnect",
        "clean start published a waiting will",
        "smaller window on resume: messages held back in flight",
        "held-back message resent as the window opened",
        "puback of a held-back message",
        "pubrec of a held-back message",
        "wrong acknowledgement of a held-back message: still owed",
        "a deadline passed without a sweep",
        "connect after the session's expiry, before the sweep: it had ended",
        "connect after the delayed will was due, before the sweep: will published",
        "in-flight message too large for the client on resume",
        "QoS 1/2 message dropped: expired",
        "QoS 1/2 message dropped: too large",
        "QoS 1/2 message dropped: queue full",
        "QoS 0 message dropped: too large",
        "clean start discarded a session",
        "resumed with messages in flight",
        "will published",
        "delivered at once",
        "queue full: oldest dropped",
        "acknowledgement refilled the window",
        "puback released a message",
        "pubrec answered by PUBREL",
        "pubcomp released a message",
        "puback ignored",
        "pubcomp ignored",
        "inbound QoS 2 PUBLISH",
        "inbound QoS 2 PUBLISH re-sent before PUBREL"
      ]
    ) {
      expect(stats.get(situation) ?? 0, situation).toBeGreaterThan(0)
    }
  })

  it("commands print as a readable trace", () => {
    const [scenario] = fc.sample(scenarioArbitrary({ weights: balanced, maxCommands: 30, maxReceiveMaximum: 1, maxQueued: 1 }), {
      numRuns: 1,
      seed: 3
    })
    for (const command of scenario!.commands) expect(fc.stringify(command)).toBe(showCommand(command))
  })

  it("the model's constants and packet size agree with the implementation's", () => {
    expect(NEVER).toBe(EXPIRY_NEVER)
    const message = { topic: "t/1", payload: "p12-----", qos: 1 as const, retain: false, expiresAt: START + 2000 }
    for (const m of [message, { ...message, qos: 0 as const }, { ...message, expiresAt: undefined }]) {
      expect(packetSize(m)).toBe(publishSize(toMessage(m)))
    }
  })
})
