/**
 * `Sessions.sync` (the per-message transitions without an Effect, offered over the memory
 * provider) against the Effect operations over a provider without `modifySync`: the same
 * sequence of deliveries and acknowledgements gives the same packets to send and the same stored
 * session, message expiry included (one fixed clock for both).
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer, Option } from "effect"
import * as fc from "fast-check"
import type { Message } from "../../src/session/Message.ts"
import * as MemorySessionStateProvider from "../../src/session/MemorySessionStateProvider.ts"
import type { SessionState } from "../../src/session/SessionState.ts"
import { SessionStateProvider } from "../../src/session/SessionStateProvider.ts"
import * as Sessions from "../../src/session/Sessions.ts"
import type { Limits, Outgoing } from "../../src/session/Transitions.ts"
import { messageV5Arb, NOW, packetIdArb, sessionStateArb } from "./Arbitraries.ts"
import * as NaiveProvider from "./NaiveProvider.ts"
import { normalizeOutgoing, normalizeState } from "./Normalize.ts"
import { params } from "./Props.ts"

type Op =
  | { readonly _tag: "deliver"; readonly message: Message; readonly online: boolean }
  | { readonly _tag: "puback" | "pubrec" | "pubcomp"; readonly packetId: number }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ _tag: fc.constant("deliver" as const), message: messageV5Arb(), online: fc.boolean() }),
  fc.record({ _tag: fc.constantFrom("puback" as const, "pubrec" as const, "pubcomp" as const), packetId: packetIdArb })
)

/** A clock standing still at `NOW`, so that both sides see the same expiry. */
const fixedClock: Clock.Clock = {
  currentTimeMillisUnsafe: () => NOW,
  currentTimeMillis: Effect.succeed(NOW),
  currentTimeNanosUnsafe: () => BigInt(NOW) * 1_000_000n,
  currentTimeNanos: Effect.succeed(BigInt(NOW) * 1_000_000n),
  monotonicTimeNanosUnsafe: () => BigInt(NOW) * 1_000_000n,
  monotonicTimeNanos: Effect.succeed(BigInt(NOW) * 1_000_000n),
  sleep: () => Effect.void
}

/** Runs the operations through `sessions.sync` (or the Effect operations when `sync` is undefined). */
const run = (provider: Layer.Layer<SessionStateProvider>, limits: Limits, initial: SessionState | undefined, ops: ReadonlyArray<Op>) =>
  Effect.gen(function*() {
    const store = yield* SessionStateProvider
    if (initial !== undefined) yield* store.store(initial)
    const sessions = yield* Sessions.make(limits)
    const clientId = initial?.clientId ?? "c1"
    const sent: Array<ReadonlyArray<Outgoing>> = []
    for (const op of ops) {
      const sync = sessions.sync
      if (op._tag === "deliver") {
        sent.push(sync !== undefined ? sync.deliver(clientId, op.message, op.online) : yield* sessions.deliver(clientId, op.message, op.online))
      } else {
        sent.push(sync !== undefined ? sync[op._tag](clientId, op.packetId) : yield* sessions[op._tag](clientId, op.packetId))
      }
    }
    return {
      usedSync: sessions.sync !== undefined,
      sent: sent.map((out) => out.map(normalizeOutgoing)),
      stored: normalizeState(Option.getOrUndefined(yield* store.get(clientId)))
    }
  }).pipe(Effect.provide(provider), Effect.provideService(Clock.Clock, fixedClock))

describe("Sessions.sync", () => {
  it("is offered over the memory provider and not over one without modifySync", async () => {
    const limits = { maxQueuedMessages: 10, queueQos0: false }
    const memory = await Effect.runPromise(run(MemorySessionStateProvider.layer, limits, undefined, []))
    const naive = await Effect.runPromise(run(NaiveProvider.layer, limits, undefined, []))
    expect([memory.usedSync, naive.usedSync]).toEqual([true, false])
  })

  it("gives the same packets and the same stored session as the Effect operations, for any sequence of deliveries and acks", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.option(sessionStateArb({ v5: true }), { nil: undefined }),
        fc.array(opArb, { maxLength: 30 }),
        fc.record({ maxQueuedMessages: fc.integer({ min: 0, max: 6 }), queueQos0: fc.boolean() }),
        async (initial, ops, limits) => {
          const viaSync = await Effect.runPromise(run(MemorySessionStateProvider.layer, limits, initial, ops))
          const viaEffect = await Effect.runPromise(run(NaiveProvider.layer, limits, initial, ops))
          expect(viaSync.usedSync).toBe(true)
          expect(viaSync.sent).toEqual(viaEffect.sent)
          expect(viaSync.stored).toEqual(viaEffect.stored)
        }
      ),
      params()
    )
  })
})
