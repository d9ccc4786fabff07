import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { KeyedLock } from "../../src/broker/KeyedLock.ts"

describe("KeyedLock", () => {
  it.effect("runs critical sections of one key one at a time, in arrival order", () =>
    Effect.gen(function*() {
      const lock = new KeyedLock()
      const log: Array<string> = []
      const section = (name: string) =>
        lock.withLock("k", Effect.gen(function*() {
          log.push(`${name}+`)
          yield* Effect.yieldNow
          yield* Effect.yieldNow
          log.push(`${name}-`)
        }))
      yield* Effect.all([section("a"), section("b"), section("c")], { concurrency: "unbounded" })
      assert.deepStrictEqual(log, ["a+", "a-", "b+", "b-", "c+", "c-"])
      assert.strictEqual(lock.size, 0)
    }))

  it.effect("different keys do not wait for each other", () =>
    Effect.gen(function*() {
      const lock = new KeyedLock()
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.forkChild(lock.withLock("a", Deferred.await(gate)))
      yield* Effect.yieldNow
      const other = yield* lock.withLock("b", Effect.succeed("free"))
      assert.strictEqual(other, "free")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
    }))

  it.effect("an interrupted waiter leaves the queue and the lock is still passed on and freed", () =>
    Effect.gen(function*() {
      const lock = new KeyedLock()
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.forkChild(lock.withLock("k", Deferred.await(gate)))
      yield* Effect.yieldNow
      const waiter = yield* Effect.forkChild(lock.withLock("k", Effect.succeed("never")))
      const next = yield* Effect.forkChild(lock.withLock("k", Effect.succeed("next")))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(waiter)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual(yield* Fiber.join(next), "next")
      assert.strictEqual(lock.size, 0)
    }))

  it.effect("a failing section releases the lock", () =>
    Effect.gen(function*() {
      const lock = new KeyedLock()
      const failed = yield* Effect.flip(lock.withLock("k", Effect.fail("boom")))
      assert.strictEqual(failed, "boom")
      assert.strictEqual(yield* lock.withLock("k", Effect.succeed(1)), 1)
      assert.strictEqual(lock.size, 0)
    }))

  it.effect("isFree is false from the first holder until the last waiter has released, so a synchronous section never overtakes a queued one", () =>
    Effect.gen(function*() {
      const lock = new KeyedLock()
      const gate = yield* Deferred.make<void>()
      const second = yield* Deferred.make<void>()
      const seen: Array<boolean> = [lock.isFree("k")]
      const holder = yield* Effect.forkChild(lock.withLock("k", Deferred.await(gate)))
      yield* Effect.yieldNow
      seen.push(lock.isFree("k"), lock.isFree("other"))
      const waiter = yield* Effect.forkChild(lock.withLock("k", Deferred.await(second)))
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      // handed over to the waiter, which holds it now
      seen.push(lock.isFree("k"))
      yield* Deferred.succeed(second, undefined)
      yield* Fiber.join(waiter)
      seen.push(lock.isFree("k"))
      assert.deepStrictEqual(seen, [true, false, true, false, true])
    }))
})
