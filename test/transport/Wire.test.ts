/**
 * The thin wire over a real `net.Socket` pair on loopback: bytes arrive in order across pulls,
 * a reader that does not pull pauses the socket (and a pull resumes it), the end of the stream
 * comes after what was buffered, a reader that is told (`notify`) finds the bytes with `read`, and
 * direct writes report a full buffer and its drain.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as Net from "node:net"
import * as Wire from "../../src/transport/Wire.ts"

/** A connected pair: `server` is the accepted socket, paused as the listener hands it over. */
const pair = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<{ server: Net.Socket; client: Net.Socket; listener: Net.Server }>((resolve) => {
      const listener = Net.createServer((server) => {
        server.pause()
        resolve({ server, client, listener })
      })
      let client: Net.Socket
      listener.listen(0, "127.0.0.1", () => {
        client = Net.connect((listener.address() as Net.AddressInfo).port, "127.0.0.1")
      })
    })
  ),
  ({ client, listener, server }) =>
    Effect.sync(() => {
      client.destroy()
      server.destroy()
      listener.close()
    })
)

const wait = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

/** Pulls until `total` bytes have arrived; their concatenation. */
const readBytes = (wire: Wire.Wire, total: number) =>
  Effect.gen(function*() {
    const parts: Array<Uint8Array> = []
    let got = 0
    while (got < total) {
      for (const chunk of yield* wire.pull) {
        parts.push(chunk)
        got += chunk.length
      }
    }
    return Buffer.concat(parts)
  })

describe("Wire over a net.Socket", () => {
  it.live("bytes written by the peer arrive complete and in order, then the end as a SocketError", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server } = yield* pair
      const wire = Wire.fromNetSocket(server)
      const sent = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251))
      client.end(sent)
      const received = yield* readBytes(wire, sent.length)
      assert.isTrue(received.equals(sent))
      const after = yield* Effect.exit(wire.pull)
      assert.isTrue(Exit.isFailure(after))
      wire.close()
    })))

  it.live("a reader that does not pull pauses the socket past 64 KiB; a pull resumes it", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server } = yield* pair
      const wire = Wire.fromNetSocket(server)
      client.write(Buffer.alloc(1024 * 1024))
      yield* wait(200)
      assert.isTrue(server.isPaused(), "paused while nobody pulls")
      const first = yield* wire.pull
      assert.isAbove(first.reduce((n, c) => n + c.length, 0), 64 * 1024 - 1)
      assert.isFalse(server.isPaused(), "resumed by the pull")
      wire.close()
    })))

  it.live("a notified reader is told of every chunk and of the end; read gives the bytes in order, then the SocketError, and nothing in between", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server } = yield* pair
      const wire = Wire.fromNetSocket(server)
      let told = 0
      wire.notify({ readable: () => void told++ })
      assert.isUndefined(wire.read(), "nothing received yet")
      const sent = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 253))
      client.write(sent.subarray(0, 50_000))
      yield* wait(100)
      assert.isAbove(told, 0, "told of the first bytes")
      const parts: Array<Uint8Array> = []
      const first = wire.read()
      assert.isTrue(first !== undefined && Wire.isChunks(first))
      parts.push(...(first as ReadonlyArray<Uint8Array>))
      assert.isUndefined(wire.read(), "emptied by the read")
      const toldBefore = told
      client.end(sent.subarray(50_000))
      yield* wait(100)
      assert.isAbove(told, toldBefore, "told again")
      let next = wire.read()
      while (next !== undefined && Wire.isChunks(next)) {
        parts.push(...next)
        next = wire.read()
      }
      assert.isTrue(Buffer.concat(parts).equals(sent), "all the bytes, in order")
      assert.isDefined(next, "then the end of the stream")
      assert.strictEqual((next as { _tag: string })._tag, "SocketError")
      wire.close()
    })))

  it.live("a notified reader that does not read pauses the socket past 64 KiB; a read resumes it", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server } = yield* pair
      const wire = Wire.fromNetSocket(server)
      wire.notify({ readable: () => {} })
      client.write(Buffer.alloc(1024 * 1024))
      yield* wait(200)
      assert.isTrue(server.isPaused(), "paused while nobody reads")
      const chunks = wire.read()
      assert.isTrue(chunks !== undefined && Wire.isChunks(chunks))
      assert.isFalse(server.isPaused(), "resumed by the read")
      wire.close()
    })))

  it.live("writeNow says when the socket's buffer is full; afterDrain calls back once the peer read it", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server } = yield* pair
      const wire = Wire.fromNetSocket(server)
      const writer = wire.writer as Wire.DirectWriter
      client.pause()
      let more = true
      let written = 0
      while (more && written < 64 * 1024 * 1024) {
        more = writer.writeNow([Buffer.alloc(256 * 1024)])
        written += 256 * 1024
      }
      assert.isFalse(more, "the buffer filled up")
      const drained = yield* Effect.callback<unknown>((resume) => {
        writer.afterDrain((error) => resume(Effect.succeed(error)))
        client.resume()
      })
      assert.isUndefined(drained)
      wire.close()
    })))

  it.live("afterDrain reports the error when the socket closes before draining", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server } = yield* pair
      const wire = Wire.fromNetSocket(server)
      const writer = wire.writer as Wire.DirectWriter
      client.pause()
      while (writer.writeNow([Buffer.alloc(256 * 1024)]));
      const outcome = yield* Effect.callback<unknown>((resume) => {
        writer.afterDrain((error) => resume(Effect.succeed(error)))
        server.destroy()
      })
      assert.instanceOf(outcome, Error)
    })))
})
