import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { getHeapStatistics } from "node:v8"
import * as HeapTrim from "../../src/memory/HeapTrim.ts"
import type * as TrimPolicy from "../../src/memory/TrimPolicy.ts"

const MB = 1024 * 1024
// every reading counts as quiet, so the test does not depend on how busy vitest's worker is
const anyLoad: TrimPolicy.TrimPolicy = { growthBytes: 8 * MB, quietUtilization: 2, timeBudget: 0.01 }

/** Grows the committed heap by keeping ~`mb` MB of small objects alive, then lets them go. */
const grow = (mb: number): number => {
  let kept: Array<{ readonly i: number; readonly s: string }> | undefined = []
  for (let i = 0; i < mb * 16_000; i++) kept.push({ i, s: `entry ${i}` })
  const committed = getHeapStatistics().total_heap_size
  kept = undefined
  return committed
}

describe("HeapTrim (one memory-reducing GC after a burst)", () => {
  it.live("gives back what a burst grew: the committed heap after the trim is below what it was", () =>
    Effect.gen(function*() {
      const trims: Array<HeapTrim.Trim> = []
      const fiber = yield* Effect.forkChild(HeapTrim.run({ policy: anyLoad, intervalMs: 20, onTrim: (trim) => trims.push(trim) }))
      yield* Effect.sleep("50 millis")
      expect(trims).toEqual([])
      const grown = grow(64)
      while (trims.length === 0) yield* Effect.sleep("20 millis")
      yield* Fiber.interrupt(fiber)
      const trim = trims[0]!
      expect(trim.committedBefore).toBeGreaterThanOrEqual(trim.committedAfter)
      expect(trim.committedAfter).toBeLessThan(grown)
      expect(trim.tookMs).toBeGreaterThan(0)
      expect(HeapTrim.describe(trim)).toMatch(/^heap trimmed in \d+ ms: committed heap [\d.]+ -> [\d.]+ MB, RSS [\d.]+ -> [\d.]+ MB$/)
    }), 20_000)

  it.live("one trimmer per process: a second one returns at once while the first runs, and runs once it has stopped", () =>
    Effect.gen(function*() {
      const first = yield* Effect.forkChild(HeapTrim.run({ policy: anyLoad, intervalMs: 20 }))
      yield* Effect.yieldNow
      // would repeat forever if it were a trimmer of its own
      yield* HeapTrim.run({ policy: anyLoad, intervalMs: 20 }).pipe(Effect.timeout("2 seconds"))
      yield* Fiber.interrupt(first)
      const again = yield* Effect.forkChild(HeapTrim.run({ policy: anyLoad, intervalMs: 20 }))
      yield* Effect.sleep("100 millis")
      expect(again.pollUnsafe()).toBeUndefined()
      yield* Fiber.interrupt(again)
    }), 20_000)
})
