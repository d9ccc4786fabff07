/**
 * The outbox over a direct writer (how TCP and TLS connections write): no writer fiber, the
 * burst's setImmediate writes what is queued in order, a full socket buffer holds the rest until
 * its drain, and `finished` completes once the closed outbox has written everything (or the
 * socket is gone).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as Outbox from "../../src/broker/Outbox.ts"
import type { DirectWriter } from "../../src/transport/Wire.ts"

/** Every test packet is this many bytes, each filled with its tag. */
const SIZE = 10

/** The tags of the packets in one chunk (the outbox may join several packets into one buffer). */
const tagsOf = (chunk: Uint8Array): Array<number> => {
  const tags: Array<number> = []
  for (let i = 0; i < chunk.length; i += SIZE) tags.push(chunk[i]!)
  return tags
}

/**
 * A direct writer that records what it was given (the packet tags of each write, and how many
 * chunks each write had); `full` makes it ask for a drain, `gone` makes it throw.
 */
const fakeDirect = () => {
  const state = {
    full: false,
    gone: false,
    batches: [] as Array<Array<number>>,
    chunkCounts: [] as Array<number>,
    drain: undefined as ((error: unknown) => void) | undefined
  }
  const writer: DirectWriter = {
    write: () => Effect.void,
    writeAll: () => Effect.void,
    writeNow: (chunks) => {
      if (state.gone) throw new Error("socket closed")
      state.batches.push(chunks.flatMap(tagsOf))
      state.chunkCounts.push(chunks.length)
      return !state.full
    },
    afterDrain: (callback) => {
      state.drain = callback
    }
  }
  return { writer, state }
}

/** Lets the event loop run the outbox's setImmediate. */
const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve))))

const packet = (tag: number) => new Uint8Array(SIZE).fill(tag)

describe("Outbox over a direct writer", () => {
  it.live("a burst of sends is one batch, written in order without a writer fiber; finished after close", () =>
    Effect.scoped(Effect.gen(function*() {
      const { state, writer } = fakeDirect()
      const outbox = Outbox.make(writer, 1024 * 1024)
      yield* outbox.start
      for (let i = 1; i <= 5; i++) outbox.send(packet(i))
      assert.deepStrictEqual(state.batches, [], "nothing is written before the burst ends")
      yield* turn
      assert.deepStrictEqual(state.batches, [[1, 2, 3, 4, 5]])
      assert.deepStrictEqual(state.chunkCounts, [1], "small packets go to the socket as one buffer")
      assert.strictEqual(outbox.pendingBytes(), 0)
      outbox.send(packet(6))
      outbox.close()
      yield* outbox.finished
      assert.deepStrictEqual(state.batches, [[1, 2, 3, 4, 5], [6]], "close writes what is queued")
    })))

  it.live("flushNow writes what is queued at once, in order; the burst's setImmediate then has nothing left", () =>
    Effect.scoped(Effect.gen(function*() {
      const { state, writer } = fakeDirect()
      const outbox = Outbox.make(writer, 1024 * 1024)
      yield* outbox.start
      outbox.flushNow()
      assert.deepStrictEqual(state.batches, [], "nothing queued: no write")
      outbox.send(packet(1))
      outbox.send(packet(2))
      outbox.flushNow()
      assert.deepStrictEqual(state.batches, [[1, 2]], "written before the turn ends")
      outbox.send(packet(3))
      yield* turn
      assert.deepStrictEqual(state.batches, [[1, 2], [3]], "what came after is written at the end of the turn")
      assert.strictEqual(outbox.pendingBytes(), 0)
    })))

  it.live("a full socket buffer holds the next writes until it drains; the bytes count until written", () =>
    Effect.scoped(Effect.gen(function*() {
      const { state, writer } = fakeDirect()
      const outbox = Outbox.make(writer, 1024 * 1024)
      yield* outbox.start
      state.full = true
      outbox.send(packet(1))
      yield* turn
      outbox.send(packet(2))
      outbox.send(packet(3))
      yield* turn
      assert.deepStrictEqual(state.batches, [[1]], "nothing more while the buffer is full")
      assert.strictEqual(outbox.pendingBytes(), 30)
      outbox.close()
      const finished = yield* Effect.forkChild(outbox.finished)
      yield* turn
      assert.isUndefined(finished.pollUnsafe(), "not finished while a write waits for the drain")
      state.full = false
      state.drain!(undefined)
      yield* Fiber.join(finished)
      assert.deepStrictEqual(state.batches, [[1], [2, 3]])
      assert.strictEqual(outbox.pendingBytes(), 0)
    })))

  it.live("a socket that is gone (a write throws, or closes before draining) finishes the outbox", () =>
    Effect.scoped(Effect.gen(function*() {
      const first = fakeDirect()
      const thrown = Outbox.make(first.writer, 1024 * 1024)
      yield* thrown.start
      first.state.gone = true
      thrown.send(packet(1))
      yield* turn
      yield* thrown.finished

      const second = fakeDirect()
      const closed = Outbox.make(second.writer, 1024 * 1024)
      yield* closed.start
      second.state.full = true
      closed.send(packet(1))
      yield* turn
      const finished = yield* Effect.forkChild(closed.finished)
      yield* turn
      assert.isUndefined(finished.pollUnsafe())
      second.state.drain!(new Error("socket closed"))
      yield* Fiber.join(finished)
    })))
})
