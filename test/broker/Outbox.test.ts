/**
 * The outbox's slow-consumer policy on a fake socket writer whose writes complete only when the
 * test says so, with time moved by TestClock: high/low water marks, publishers released on
 * drain, stall detection, the hard cap, drop counting and reporting, the stalled disconnect.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Logger } from "effect"
import * as Socket from "effect/socket/Socket"
import { TestClock } from "effect/testing"
import * as Outbox from "../../src/broker/Outbox.ts"

const KiB = 1024
const HIGH = 256 * KiB
const LOW = HIGH / 2
const CAP = 512 * KiB
const SLOW_MS = 2000

/** A socket writer whose `writeAll` calls each wait for `complete()` (unless `instant`). */
const fakeWriter = () => {
  const writes: Array<{ readonly bytes: number; readonly done: Deferred.Deferred<void> }> = []
  const singles: Array<Uint8Array> = []
  const state = { closed: false, instant: false, written: 0 }
  const writer: Socket.Writer = {
    write: (chunk) =>
      Effect.sync(() => {
        if (Socket.isCloseEvent(chunk)) state.closed = true
        else if (typeof chunk !== "string") singles.push(chunk)
      }),
    writeAll: (chunks) =>
      Effect.suspend(() => {
        let bytes = 0
        for (const chunk of chunks) bytes += chunk.length
        if (state.instant) {
          state.written += bytes
          return Effect.void
        }
        const done = Deferred.makeUnsafe<void>()
        writes.push({ bytes, done })
        return Deferred.await(done)
      })
  }
  /** Completes the oldest write in progress. */
  const complete = Effect.suspend(() => {
    const write = writes.shift()
    assert.isDefined(write, "a write is in progress")
    state.written += write!.bytes
    return Deferred.succeed(write!.done, undefined)
  }).pipe(Effect.andThen(turn))
  return { writer, writes, singles, state, complete }
}

/** Lets the event loop and the fibers run (the outbox wakes its writer with setImmediate). */
const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve))))

const chunk = (size: number) => new Uint8Array(size)

/** An outbox with the test limits, configured and running. */
const running = (options: { readonly disconnectMs?: number; readonly disconnectPacket?: Uint8Array } = {}) =>
  Effect.gen(function*() {
    const fake = fakeWriter()
    const outbox = Outbox.make(fake.writer, CAP)
    outbox.configure({
      clientId: "sub",
      highWaterBytes: HIGH,
      slowConsumerMs: SLOW_MS,
      disconnectMs: options.disconnectMs ?? 0,
      disconnectPacket: options.disconnectPacket
    })
    const writer = yield* Effect.forkChild(outbox.run)
    yield* turn
    return { outbox, fake, writer }
  })

/** Queues `total` bytes in 16 KiB packets. */
const fill = (outbox: Outbox.Outbox, total: number) => {
  for (let sent = 0; sent < total; sent += 16 * KiB) outbox.send(chunk(16 * KiB))
}

/** Captures log lines. */
const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make<unknown, void>(({ message }) => {
    lines.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
  })
  return { lines, layer: Logger.layer([logger]) }
}

describe("Outbox slow-consumer policy", () => {
  it.effect("below the high-water mark nothing is held back and everything is written", () =>
    Effect.gen(function*() {
      const { outbox, fake } = yield* running()
      fake.state.instant = true
      fill(outbox, HIGH)
      assert.isFalse(outbox.congested(), "at the high-water mark, not over it")
      yield* turn
      yield* turn
      assert.strictEqual(fake.state.written, HIGH)
      assert.strictEqual(outbox.pendingBytes(), 0)
    }))

  it.effect("over the high-water mark a publisher waits until the outbox is back at the low-water mark", () =>
    Effect.gen(function*() {
      const { outbox, fake } = yield* running()
      fill(outbox, HIGH + 16 * KiB)
      yield* turn
      assert.isTrue(outbox.congested())
      assert.isTrue(outbox.holdsBack())
      const waiting = yield* Effect.forkChild(outbox.drained)
      yield* turn
      // each write takes at most 64 KiB: drain until just above the low-water mark
      while (outbox.pendingBytes() - fake.writes[0]!.bytes > LOW) {
        yield* fake.complete
        assert.isUndefined(waiting.pollUnsafe(), `still waiting at ${outbox.pendingBytes()} bytes`)
      }
      yield* fake.complete
      assert.isTrue(outbox.pendingBytes() <= LOW)
      assert.isDefined(waiting.pollUnsafe(), "released at the low-water mark")
      assert.isFalse(outbox.holdsBack())
    }))

  it.effect("a publisher waits at most slowConsumerMs for a subscriber that progresses but stays over the low-water mark", () =>
    Effect.gen(function*() {
      const { outbox, fake } = yield* running()
      fill(outbox, CAP)
      yield* turn
      yield* outbox.watch
      const waiting = yield* Effect.forkChild(outbox.drained)
      yield* turn
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust(SLOW_MS / 2)
        yield* fake.complete
        fill(outbox, 64 * KiB)
      }
      assert.isFalse(outbox.stalled(), "it is making progress")
      assert.isDefined(waiting.pollUnsafe(), "released after slowConsumerMs")
      assert.isTrue(outbox.holdsBack(), "still over the low-water mark")
    }))

  it.effect("QoS 0 that would take the outbox past the cap is dropped and counted", () =>
    Effect.gen(function*() {
      const { outbox } = yield* running()
      fill(outbox, CAP - 16 * KiB)
      assert.isTrue(outbox.admit(16 * KiB), "exactly up to the cap is admitted")
      outbox.send(chunk(16 * KiB))
      assert.strictEqual(outbox.pendingBytes(), CAP)
      assert.isFalse(outbox.admit(1))
      assert.isFalse(outbox.admit(100))
      assert.strictEqual(outbox.dropped(), 2)
      assert.strictEqual(outbox.pendingBytes(), CAP)
    }))

  it.effect("no write completed for slowConsumerMs: stalled, waiting publishers released, nobody held back", () =>
    Effect.gen(function*() {
      const { outbox } = yield* running()
      fill(outbox, HIGH + 16 * KiB)
      yield* turn
      const waiting = yield* Effect.forkChild(outbox.drained)
      yield* outbox.watch
      yield* TestClock.adjust(SLOW_MS - SLOW_MS / 4)
      assert.isFalse(outbox.stalled(), "not before slowConsumerMs")
      assert.isUndefined(waiting.pollUnsafe())
      yield* TestClock.adjust(SLOW_MS / 4)
      assert.isTrue(outbox.stalled())
      yield* turn
      assert.isDefined(waiting.pollUnsafe(), "the waiting publisher is released")
      assert.isFalse(outbox.holdsBack(), "a stalled outbox holds nobody back")
    }))

  it.effect("a subscriber that keeps completing writes is never stalled, and a stalled one recovers on its next write", () =>
    Effect.gen(function*() {
      const { outbox, fake } = yield* running()
      fill(outbox, CAP)
      yield* turn
      yield* outbox.watch
      for (let i = 0; i < 4; i++) {
        yield* TestClock.adjust(SLOW_MS / 2)
        yield* fake.complete
        fill(outbox, 64 * KiB)
      }
      assert.isFalse(outbox.stalled(), "progress every slowConsumerMs / 2")
      yield* TestClock.adjust(SLOW_MS * 2)
      assert.isTrue(outbox.stalled())
      yield* fake.complete
      assert.isFalse(outbox.stalled(), "a completed write is progress again")
      assert.isTrue(outbox.holdsBack(), "still over the low-water mark: publishers wait again")
    }))

  it.effect("a stalled subscriber is closed after disconnectMs, MQTT 5 DISCONNECT written first", () =>
    Effect.gen(function*() {
      const packet = new Uint8Array([0xe0, 0x01, 0x97])
      const { outbox, fake } = yield* running({ disconnectMs: 5000, disconnectPacket: packet })
      fill(outbox, HIGH + 16 * KiB)
      yield* turn
      yield* outbox.watch
      yield* TestClock.adjust(4500)
      assert.isTrue(outbox.stalled())
      assert.isFalse(fake.state.closed, "not before disconnectMs")
      yield* TestClock.adjust(500)
      assert.isTrue(fake.state.closed)
      assert.deepStrictEqual(fake.singles, [packet])
    }))

  it.effect("with disconnectMs 0 a stalled subscriber is never closed", () =>
    Effect.gen(function*() {
      const { outbox, fake } = yield* running({ disconnectMs: 0 })
      fill(outbox, HIGH + 16 * KiB)
      yield* turn
      yield* outbox.watch
      yield* TestClock.adjust(600_000)
      assert.isTrue(outbox.stalled())
      assert.isFalse(fake.state.closed)
    }))

  it.effect("drops are reported with the client id at most once per interval, with the count since the last report", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const { outbox } = yield* running()
      fill(outbox, CAP)
      yield* turn
      for (let i = 0; i < 3; i++) assert.isFalse(outbox.admit(100))
      yield* outbox.watch
      yield* TestClock.adjust(SLOW_MS / 4)
      const drops = () => logs.lines.filter((line) => line.includes("dropping QoS 0"))
      assert.strictEqual(drops().length, 1)
      assert.include(drops()[0], "slow consumer sub")
      assert.include(drops()[0], "3 QoS 0 message(s) dropped since the last report")
      for (let i = 0; i < 2; i++) assert.isFalse(outbox.admit(100))
      // the stall line (a state change, not rate-limited) carries the count and starts a new interval
      yield* TestClock.adjust(SLOW_MS * 3 / 4)
      assert.strictEqual(drops().length, 1)
      const stall = logs.lines.filter((line) => line.includes("publishers no longer wait"))
      assert.strictEqual(stall.length, 1)
      assert.include(stall[0], "2 QoS 0 message(s) dropped since the last report, 5 in all")
      for (let i = 0; i < 4; i++) assert.isFalse(outbox.admit(100))
      yield* TestClock.adjust(Outbox.DROP_LOG_INTERVAL_MS - SLOW_MS)
      assert.strictEqual(drops().length, 1, "at most one line per interval")
      yield* TestClock.adjust(SLOW_MS)
      assert.strictEqual(drops().length, 2)
      assert.include(drops()[1], "4 QoS 0 message(s) dropped since the last report, 9 in all")
    }).pipe(Effect.provide(logs.layer))
  })

  it.effect("closing releases waiting publishers and the writer ends once everything is written", () =>
    Effect.gen(function*() {
      const { outbox, fake, writer } = yield* running()
      fill(outbox, HIGH + 16 * KiB)
      yield* turn
      const waiting = yield* Effect.forkChild(outbox.drained)
      yield* turn
      outbox.close()
      yield* turn
      assert.isDefined(waiting.pollUnsafe())
      while (fake.writes.length > 0) yield* fake.complete
      yield* Fiber.join(writer)
      assert.strictEqual(fake.state.written, HIGH + 16 * KiB)
    }))
})
