import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { ReceiveBudget } from "../../src/broker/ReceiveBudget.ts"

describe("ReceiveBudget", () => {
  it.effect("grants waiters oldest first as bytes come back, and hands each grant over before the waiter resumes", () =>
    Effect.gen(function*() {
      const budget = new ReceiveBudget(100)
      expect(budget.tryTake(80)).toBe(true)
      const granted: Array<string> = []
      const first = yield* Effect.forkChild(budget.take(50, () => granted.push("first")), { startImmediately: true })
      const second = yield* Effect.forkChild(budget.take(10, () => granted.push("second")), { startImmediately: true })
      // the small one fits but waits behind the older waiter
      expect(granted).toEqual([])
      expect(budget.tryTake(1)).toBe(false)
      budget.give(80)
      expect(granted).toEqual(["first", "second"])
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      expect(budget.inUse).toBe(60)
    }))

  it.effect("an interrupted waiter leaves the line and those behind it are granted", () =>
    Effect.gen(function*() {
      const budget = new ReceiveBudget(100)
      expect(budget.tryTake(60)).toBe(true)
      const granted: Array<string> = []
      const big = yield* Effect.forkChild(budget.take(90, () => granted.push("big")), { startImmediately: true })
      const small = yield* Effect.forkChild(budget.take(30, () => granted.push("small")), { startImmediately: true })
      expect(budget.waiting).toBe(2)
      yield* Fiber.interrupt(big)
      yield* Fiber.join(small)
      expect(granted).toEqual(["small"])
      expect(budget.waiting).toBe(0)
      expect(budget.inUse).toBe(90)
    }))
})
