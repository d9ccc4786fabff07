/**
 * The conformance suite every `SessionStateProvider` must pass: the provider API, the model-based
 * properties of the session transitions driven through the `Sessions` service over the provider,
 * and concurrent use. A provider's test file is one line:
 *
 *     providerConformance("Memory", MemorySessionStateProvider.layer)
 *
 * Each model property replays generated scenarios (see `Commands.ts`) with every check of
 * `Harness.ts` on; they differ in what their scenarios stress. Scenarios mix MQTT 3.1.1 and MQTT 5
 * connects over the one session model (session expiry, delayed wills, Receive Maximum changing
 * between reconnects, Maximum Packet Size, message expiry, time passing with or without the
 * broker's sweep). A failure names the check that failed, the step, and fast-check prints the
 * seed, the path and the shrunk command list.
 * Replay one with `npm run test:props -- --seed <seed> --path "<path>" -t "<property name>"` (or the
 * same through PROPS_SEED / PROPS_PATH and `npx vitest run test/session -t ...`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as fc from "fast-check"
import { isDeepStrictEqual } from "node:util"
import { MessageQueue } from "../../src/session/MessageQueue.ts"
import { EXPIRY_NEVER, make, type SessionState } from "../../src/session/SessionState.ts"
import { SessionStateProvider } from "../../src/session/SessionStateProvider.ts"
import * as Sessions from "../../src/session/Sessions.ts"
import { sessionStateArb } from "./Arbitraries.ts"
import { balanced, type ScenarioShape, scenarioArbitrary } from "./Commands.ts"
import { type ConcurrencyPlan, concurrencyPlanArbitrary, runConcurrently } from "./Concurrency.ts"
import { runScenario, sessionsOver } from "./Harness.ts"
import { normalizeState } from "./Normalize.ts"
import { params, timeout } from "./Props.ts"

const shape = (
  overrides: Partial<Omit<ScenarioShape, "weights">> & { readonly weights?: Partial<ScenarioShape["weights"]> }
): ScenarioShape => ({
  maxCommands: overrides.maxCommands ?? 100,
  maxReceiveMaximum: overrides.maxReceiveMaximum ?? 3,
  maxQueued: overrides.maxQueued ?? 4,
  weights: { ...balanced, ...overrides.weights }
})

/** The model properties: the name states the invariant the scenarios stress (all checks run in each, for 3.1.1 and MQTT 5 connects alike). */
export const modelProperties: ReadonlyArray<{ readonly name: string; readonly shape: ScenarioShape }> = [
  {
    name: "sessionPresent is 1 exactly when clean start is 0 and a session was stored whose expiry had not passed, swept or not (3.1.1 and 5)",
    shape: shape({ weights: { connect: 6, disconnect: 3, lost: 3, publish: 2, ack: 1, qos2: 1, clean: 3, tick: 2, noSweep: 2 }, maxCommands: 100 })
  },
  {
    name: "a session with expiry 0 is gone when its connection ends, one within its expiry is still stored (3.1.1 clean maps to expiry 0)",
    shape: shape({ weights: { connect: 5, disconnect: 3, lost: 3, subscribe: 2, publish: 2, clean: 3 }, maxCommands: 100 })
  },
  {
    name: "no QoS 1/2 message of a persistent session is lost across disconnects and reconnects unless a stated rule drops it; in-flight ones are resent with DUP",
    shape: shape({ weights: { connect: 3, clean: 1, publish: 6, subscribe: 3, ack: 3, disconnect: 2, lost: 2, qos2: 1 }, maxCommands: 100 })
  },
  {
    name: "an inbound QoS 2 message is forwarded to subscribers exactly once per PUBLISH…PUBREL exchange",
    shape: shape({ weights: { qos2: 6, connect: 3, lost: 2, disconnect: 1, subscribe: 3, publish: 1, ack: 2 } })
  },
  {
    name: "packet ids in flight are unique, within 1..65535 and reused only after release",
    shape: shape({
      weights: { publish: 6, ack: 5, rawAck: 3, subscribe: 3, connect: 2, lost: 1, disconnect: 1, qos2: 1 },
      maxReceiveMaximum: 8,
      maxCommands: 100
    })
  },
  {
    name: "unacknowledged PUBLISHes in flight stay within receiveMaximum; the queue within maxQueuedMessages, dropping the oldest and counting it",
    shape: shape({ weights: { publish: 7, ack: 3, subscribe: 3, connect: 2, disconnect: 2, lost: 2 }, maxReceiveMaximum: 2, maxQueued: 3, maxCommands: 100 })
  },
  {
    name: "QoS ≥ 1 messages on one topic reach a subscriber in publish order, across resends and queue drains",
    shape: shape({ weights: { publish: 7, ack: 4, subscribe: 3, connect: 3, lost: 2, disconnect: 1, clean: 1 }, maxCommands: 100 })
  },
  {
    name: "the stored session equals the pure transition applied to the previously stored one (write-through)",
    shape: shape({})
  },
  {
    name: "the Sessions service over the provider agrees with the reference model after every step",
    shape: shape({ maxCommands: 120, maxReceiveMaximum: 4 })
  },
  {
    name: "3.1.1 clients only: the Sessions service agrees with the reference model after every step",
    shape: shape({ weights: { v5: 0, expiring: 0, tick: 2 }, maxCommands: 100 })
  },
  {
    name:
      "MQTT 5: a session ends when its expiry interval has passed offline and not before, even if the sweep has not run yet; clean start and session expiry are independent",
    shape: shape({
      weights: { connect: 5, takeover: 1, disconnect: 3, lost: 3, tick: 5, noSweep: 2, clean: 3, v5: 4, subscribe: 2, publish: 2, ack: 2 },
      maxCommands: 80
    })
  },
  {
    name:
      "MQTT 5: a delayed will is published exactly once, at the earlier of its delay and the session's end (by the sweep, or by a CONNECT that comes first), " +
      "and never after a resuming reconnect before it was due",
    shape: shape({
      weights: { connect: 4, takeover: 2, lost: 4, disconnect: 3, tick: 5, noSweep: 6, subscribe: 3, publish: 1, ack: 1, ackAll: 0, qos2: 0, v5: 5 },
      maxCommands: 80
    })
  },
  {
    name:
      "MQTT 5: a Receive Maximum that shrinks between reconnects holds the newest PUBLISHes back in flight with their packet ids and resends them with DUP " +
      "as the window opens, before anything new: nothing lost, no QoS 2 message delivered twice, the window kept",
    shape: shape({
      // clean start would discard what is in flight: resumes only
      weights: {
        publish: 8,
        subscribe: 3,
        unsubscribe: 0,
        ack: 5,
        ackAll: 0,
        rawAck: 0,
        connect: 5,
        takeover: 1,
        lost: 5,
        disconnect: 1,
        qos2: 0,
        tick: 0,
        clean: 0,
        v5: 6
      },
      maxReceiveMaximum: 5,
      maxCommands: 100
    })
  },
  {
    name: "MQTT 5: expired messages and messages over the client's Maximum Packet Size are dropped by their rule and never sent",
    shape: shape({
      weights: { publish: 7, expiring: 4, tick: 3, subscribe: 3, ack: 3, connect: 2, lost: 2, disconnect: 1, clean: 1, v5: 4 },
      maxCommands: 100
    })
  }
]

const sample = (clientId: string, dropped = 0): SessionState => ({
  ...make({
    clientId,
    clean: false,
    expiryInterval: EXPIRY_NEVER,
    receiveMaximum: 5,
    will: { topic: "w", payload: new Uint8Array([1, 2]), qos: 1, retain: true }
  }),
  subscriptions: new Map([["t/#", { qos: 2 }], ["u/1", { qos: 0 }]]),
  inflight: [{ packetId: 7, stage: "pubrec", message: { topic: "t/1", payload: new Uint8Array([3]), qos: 2, retain: false } }],
  queue: MessageQueue.from([{ topic: "u/1", payload: new Uint8Array(), qos: 1, retain: false }]),
  dropped,
  awaitingPubrel: [4],
  nextPacketId: 8,
  disconnectedAt: 12345
})

const sameSession = (a: Option.Option<SessionState>, b: SessionState | undefined) =>
  expect(normalizeState(Option.getOrUndefined(a))).toEqual(normalizeState(b))

export const providerConformance = (name: string, layer: Layer.Layer<SessionStateProvider>): void => {
  describe(`SessionStateProvider conformance: ${name}`, () => {
    describe("provider API", () => {
      const withProvider = <A, E>(f: (p: SessionStateProvider["Service"]) => Effect.Effect<A, E>) =>
        SessionStateProvider.use(f).pipe(Effect.provide(layer))

      it.effect("get of a client without a session is none", () =>
        withProvider((p) =>
          Effect.gen(function*() {
            expect(Option.isNone(yield* p.get("nobody"))).toBe(true)
          })
        ))

      it.effect("store then get returns the session; a second store replaces it", () =>
        withProvider((p) =>
          Effect.gen(function*() {
            yield* p.store(sample("a"))
            sameSession(yield* p.get("a"), sample("a"))
            yield* p.store(sample("a", 3))
            sameSession(yield* p.get("a"), sample("a", 3))
          })
        ))

      it.effect("remove deletes the session and is a no-op for an absent one", () =>
        withProvider((p) =>
          Effect.gen(function*() {
            yield* p.store(sample("a"))
            yield* p.store(sample("b"))
            yield* p.remove("a")
            yield* p.remove("nobody")
            expect(Option.isNone(yield* p.get("a"))).toBe(true)
            sameSession(yield* p.get("b"), sample("b"))
          })
        ))

      it.effect("modify sees the stored session, stores what it returns and returns the result", () =>
        withProvider((p) =>
          Effect.gen(function*() {
            const created = yield* p.modify("a", (current) => [Option.isNone(current), Option.some(sample("a", 1))])
            expect(created).toBe(true)
            const seen = yield* p.modify("a", (current) => {
              const value = Option.getOrThrow(current)
              return [value.dropped, Option.some({ ...value, dropped: value.dropped + 1 })]
            })
            expect(seen).toBe(1)
            sameSession(yield* p.get("a"), sample("a", 2))
          })
        ))

      it.effect("modify returning none removes the session; keeping none stores nothing", () =>
        withProvider((p) =>
          Effect.gen(function*() {
            yield* p.store(sample("a"))
            expect(yield* p.modify("a", () => ["gone", Option.none()])).toBe("gone")
            expect(Option.isNone(yield* p.get("a"))).toBe(true)
            expect(yield* p.modify("b", (current) => [Option.isNone(current), current])).toBe(true)
            expect(Option.isNone(yield* p.get("b"))).toBe(true)
            expect(yield* p.clientIds).toEqual([])
          })
        ))

      it.effect("clientIds lists exactly the clients with a stored session", () =>
        withProvider((p) =>
          Effect.gen(function*() {
            expect(yield* p.clientIds).toEqual([])
            yield* p.store(sample("a"))
            yield* p.modify("b", () => [undefined, Option.some(sample("b"))])
            yield* p.store(sample("c"))
            yield* p.remove("c")
            expect([...(yield* p.clientIds)].sort()).toEqual(["a", "b"])
          })
        ))

      it.effect("sessions of different clients are independent", () =>
        withProvider((p) =>
          Effect.gen(function*() {
            yield* p.store(sample("a", 1))
            yield* p.store(sample("b", 2))
            yield* p.modify("a", (current) => [undefined, Option.map(current, (s) => ({ ...s, dropped: 9 }))])
            sameSession(yield* p.get("a"), sample("a", 9))
            sameSession(yield* p.get("b"), sample("b", 2))
          })
        ))

      it.effect("modify is atomic: 200 concurrent read-modify-writes of one session lose no update", () =>
        withProvider((p) =>
          Effect.gen(function*() {
            yield* p.store(sample("a", 0))
            yield* Effect.forEach(
              Array.from({ length: 200 }, (_, i) => i),
              (i) =>
                Effect.gen(function*() {
                  for (let y = 0; y < i % 3; y++) yield* Effect.yieldNow
                  yield* p.modify("a", (current) => [
                    undefined,
                    Option.map(current, (s) => ({ ...s, dropped: s.dropped + 1 }))
                  ])
                }),
              { concurrency: "unbounded", discard: true }
            )
            expect(Option.getOrThrow(yield* p.get("a")).dropped).toBe(200)
          })
        ))

      it("stores any session faithfully: get after store and after modify returns an equal session", async () => {
        await fc.assert(
          fc.asyncProperty(sessionStateArb({ v5: true }), async (state) => {
            const [stored, modified] = await Effect.runPromise(withProvider((p) =>
              Effect.gen(function*() {
                yield* p.store(state)
                const stored = normalizeState(Option.getOrUndefined(yield* p.get(state.clientId)))
                yield* p.remove(state.clientId)
                yield* p.modify(state.clientId, () => [undefined, Option.some(state)])
                return [stored, normalizeState(Option.getOrUndefined(yield* p.get(state.clientId)))] as const
              })
            ))
            return isDeepStrictEqual(stored, normalizeState(state)) && isDeepStrictEqual(modified, normalizeState(state))
          }),
          params(0.5)
        )
      }, timeout(0.5))
    })

    describe("Sessions over the provider", () => {
      it.effect("operations on a client without a session send nothing, forward nothing and store nothing", () =>
        Effect.gen(function*() {
          const sessions = yield* Sessions.Sessions
          const provider = yield* SessionStateProvider
          const message = { topic: "t/1", payload: new Uint8Array([1]), qos: 1 as const, retain: false }
          expect(yield* sessions.deliver("x", message, true)).toEqual([])
          expect(yield* sessions.deliver("x", { ...message, qos: 0 }, false)).toEqual([])
          expect(yield* sessions.puback("x", 1)).toEqual([])
          expect(yield* sessions.pubrec("x", 1)).toEqual([])
          expect(yield* sessions.pubcomp("x", 1)).toEqual([])
          expect(yield* sessions.receiveQos2("x", 1)).toBe(false)
          yield* sessions.pubrel("x", 1)
          yield* sessions.subscribe("x", [["t/#", { qos: 1 }]])
          expect(yield* sessions.unsubscribe("x", ["t/#", "u/1"])).toEqual([false, false])
          expect(yield* sessions.disconnect("x", false, 5)).toEqual({ state: undefined, will: undefined })
          expect(yield* sessions.disconnect("x", { graceful: false, expiryInterval: 60 }, 5)).toEqual({ state: undefined, will: undefined })
          expect(yield* sessions.expire("x", 5)).toEqual({ state: undefined, will: undefined })
          expect(Option.isNone(yield* sessions.get("x"))).toBe(true)
          expect(yield* provider.clientIds).toEqual([])
        }).pipe(Effect.provide(sessionsOver(layer, { maxQueuedMessages: 1, queueQos0: true }))))
    })

    describe("session model", () => {
      for (const property of modelProperties) {
        it(property.name, async () => {
          await fc.assert(fc.asyncProperty(scenarioArbitrary(property.shape), (scenario) => runScenario(layer, scenario)), params())
        }, timeout())
      }
    })

    describe("concurrency", () => {
      it(
        "concurrent connects, deliveries, acknowledgements and disconnects on the same and different clients lose no update",
        async () => {
          await fc.assert(fc.asyncProperty(concurrencyPlanArbitrary, (plan) => runPlan(layer, plan)), params())
        },
        timeout()
      )
    })
  })
}

/** Runs a concurrency plan against a fresh provider built from the Layer. */
export const runPlan = (layer: Layer.Layer<SessionStateProvider>, plan: ConcurrencyPlan): Promise<void> =>
  Effect.runPromise(
    runConcurrently(plan).pipe(
      Effect.provide(sessionsOver(layer, { maxQueuedMessages: plan.maxQueuedMessages, queueQos0: false }))
    )
  )
