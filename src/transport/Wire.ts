/**
 * The byte stream one MQTT connection speaks over: chunks in (`read`, with the connection told
 * when there are some; or `pull` as an Effect), batches out (`writer`), and the TCP socket its
 * peer is known by. Most connections are idle most of the time (issue 16: memory per idle
 * connection), so a TCP or TLS connection's wire is one small object over the `net.Socket`
 * itself: its `data` events feed a buffer and tell the connection (which then reads in a fiber of
 * its own until the buffer is empty), `pause()` and `resume()` are the backpressure, and the
 * event listeners are module functions shared by every socket (they find their wire through the
 * socket), so an idle wire holds no closures, no queue and no fiber. A WebSocket connection keeps
 * Effect's socket (`fromSocket`), whose reads a fiber moves into the same kind of buffer.
 */
import { Effect, type Scope } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Socket from "effect/socket/Socket"
import type * as Http from "node:http"
import type * as Net from "node:net"

/** Who a wire tells that something can be read: a connection reading in bursts, not a parked fiber. */
export interface Readable {
  /** Called for every chunk received and once at the end of the stream; `Wire.read` takes what is there. */
  readonly readable: () => void
}

/** One connection's byte stream. */
export interface Wire {
  /**
   * Takes what was received since the last call: the chunks, or once they are all taken the
   * `SocketError` the stream ended with; undefined when there is nothing yet (the `Readable`
   * given to `notify` hears when there is).
   */
  readonly read: () => ReadonlyArray<Uint8Array> | Socket.SocketError | undefined
  /** Sets who hears about received bytes and the end of the stream. */
  readonly notify: (reader: Readable) => void
  /** The next chunks received as an Effect (waits for them); fails with a `SocketError` once the stream has ended or failed. */
  readonly pull: Effect.Effect<ReadonlyArray<Uint8Array>, Socket.SocketError>
  /** Writes batches; a `CloseEvent` closes the stream. */
  readonly writer: Socket.Writer
  /**
   * The TCP socket of the peer: the connection's own socket (TCP, TLS), or for a WebSocket its
   * upgrade request's; undefined when not known.
   */
  readonly tcp: Net.Socket | undefined
  /** Whether `tcp` carries the MQTT bytes itself (TCP, TLS), not a WebSocket's upgrade. */
  readonly direct: boolean
  /** Ends the stream once what was written is flushed (no more reads); called once the connection is done. */
  readonly close: () => void
}

/**
 * A writer that can also write without an Effect: `writeNow` hands chunks to the socket and says
 * whether it takes more (false: its buffer is full, wait for `afterDrain`); it throws when the
 * socket cannot be written any more. `afterDrain` calls back once the buffer has drained, with
 * the error when the socket closed first.
 */
export interface DirectWriter extends Socket.Writer {
  readonly writeNow: (chunks: ReadonlyArray<Uint8Array>) => boolean
  readonly afterDrain: (callback: (error: unknown) => void) => void
}

/** Buffered bytes above which the socket is paused until the connection reads them. */
const PAUSE_BYTES = 64 * 1024

const WIRE = Symbol("Wire")

/** Whether what `read` returned is chunks (not the end of the stream). */
export const isChunks = (read: ReadonlyArray<Uint8Array> | Socket.SocketError): read is ReadonlyArray<Uint8Array> => Array.isArray(read)

type Resume = (effect: Effect.Effect<ReadonlyArray<Uint8Array>, Socket.SocketError>) => void

/**
 * What was received and not read yet, and who hears about more: the reading half every wire
 * shares. A reader that is not reading costs nothing here but its `Readable`.
 */
class Inbox {
  protected chunks: Array<Uint8Array> = []
  protected bytes = 0
  private failure: Socket.SocketError | undefined = undefined
  private reader: Readable | undefined = undefined
  // a `pull` waiting for bytes (tests, and readers that want an Effect)
  private puller: Resume | undefined = undefined

  notify(reader: Readable): void {
    this.reader = reader
  }

  received(chunk: Uint8Array): void {
    this.chunks.push(chunk)
    this.bytes += chunk.length
    this.arrived()
  }

  /** The stream ended (`discard`: failed, what is buffered is dropped) — the reader sees it after the buffered chunks. */
  ended(error: Socket.SocketError, discard: boolean): void {
    this.failure ??= error
    if (discard) {
      this.chunks = []
      this.bytes = 0
    }
    this.arrived()
  }

  private arrived(): void {
    const puller = this.puller
    if (puller !== undefined) {
      const next = this.read()
      if (next === undefined) return
      this.puller = undefined
      return puller(isChunks(next) ? Effect.succeed(next) : Effect.fail(next))
    }
    this.reader?.readable()
  }

  read(): ReadonlyArray<Uint8Array> | Socket.SocketError | undefined {
    if (this.chunks.length > 0) {
      const chunks = this.chunks
      this.chunks = []
      this.bytes = 0
      this.taken()
      return chunks
    }
    return this.failure
  }

  /** The buffer was emptied by a read. */
  protected taken(): void {}

  get pull(): Effect.Effect<ReadonlyArray<Uint8Array>, Socket.SocketError> {
    return Effect.suspend(() => {
      const next = this.read()
      if (next !== undefined) return isChunks(next) ? Effect.succeed(next) : Effect.fail(next)
      return Effect.callback<ReadonlyArray<Uint8Array>, Socket.SocketError>((resume) => {
        this.puller = resume
        return Effect.sync(() => {
          if (this.puller === resume) this.puller = undefined
        })
      })
    })
  }
}

/** How the socket's events find their wire; module-level listeners instead of closures per socket. */
interface Tagged extends Net.Socket {
  [WIRE]?: NetWire | undefined
}

function onData(this: Tagged, chunk: Buffer): void {
  this[WIRE]?.receivedFromSocket(chunk)
}
function onEnd(this: Tagged): void {
  this[WIRE]?.ended(new Socket.SocketError({ reason: new Socket.SocketCloseError({ code: 1000 }) }), false)
}
function onError(this: Tagged, cause: Error): void {
  this[WIRE]?.ended(new Socket.SocketError({ reason: new Socket.SocketReadError({ cause }) }), true)
}
function onClose(this: Tagged, hadError: boolean): void {
  this[WIRE]?.ended(new Socket.SocketError({ reason: new Socket.SocketCloseError({ code: hadError ? 1006 : 1000 }) }), hadError)
  this[WIRE]?.writeDone(new Error("socket closed"))
}
function onDrain(this: Tagged): void {
  this[WIRE]?.writeDone(undefined)
}

const writeFailed = (cause: unknown) => new Socket.SocketError({ reason: new Socket.SocketWriteError({ cause }) })

/** A wire over a `net.Socket` (TCP, or TLS after its handshake). */
class NetWire extends Inbox implements Wire, DirectWriter {
  readonly direct = true
  private paused = false
  private drainWaiter: ((error: unknown) => void) | undefined = undefined
  readonly tcp: Tagged

  constructor(socket: Net.Socket) {
    super()
    this.tcp = socket
    this.tcp[WIRE] = this
    socket.on("data", onData)
    socket.on("end", onEnd)
    socket.on("error", onError)
    socket.on("close", onClose)
    socket.on("drain", onDrain)
    // the listener paused it so nothing was read before this wire existed
    socket.resume()
  }

  get writer(): DirectWriter {
    return this
  }

  receivedFromSocket(chunk: Uint8Array): void {
    // the connection is busy with what came before: stop reading from the kernel until it catches up
    if (this.bytes + chunk.length >= PAUSE_BYTES && !this.paused) {
      this.paused = true
      this.tcp.pause()
    }
    this.received(chunk)
  }

  protected override taken(): void {
    if (this.paused) {
      this.paused = false
      this.tcp.resume()
    }
  }

  writeDone(cause: Error | undefined): void {
    const waiter = this.drainWaiter
    this.drainWaiter = undefined
    waiter?.(cause)
  }

  writeNow(chunks: ReadonlyArray<Uint8Array | string>): boolean {
    const socket = this.tcp
    if (socket.destroyed) throw new Error("socket closed")
    if (chunks.length === 1) return socket.write(chunks[0]!)
    // one syscall for the batch
    let more = true
    socket.cork()
    try {
      for (const chunk of chunks) more = socket.write(chunk) && more
    } finally {
      socket.uncork()
    }
    return more
  }

  afterDrain(callback: (error: unknown) => void): void {
    if (this.tcp.destroyed) return callback(new Error("socket closed"))
    this.drainWaiter = callback
  }

  write(chunk: Uint8Array | string | Socket.CloseEvent): Effect.Effect<void, Socket.SocketError> {
    if (Socket.isCloseEvent(chunk)) {
      return Effect.sync(() => {
        this.tcp.destroy(chunk.code > 1000 ? new Error(`closed with code ${chunk.code}`) : undefined)
      })
    }
    return this.writeAll([chunk])
  }

  writeAll(chunks: NonEmptyReadonlyArray<Uint8Array | string>): Effect.Effect<void, Socket.SocketError> {
    return Effect.suspend(() => {
      let more: boolean
      try {
        more = this.writeNow(chunks)
      } catch (cause) {
        return Effect.fail(writeFailed(cause))
      }
      if (more) return Effect.void
      return Effect.callback<void, Socket.SocketError>((resume) => {
        const waiter = (error: unknown) => resume(error === undefined ? Effect.void : Effect.fail(writeFailed(error)))
        this.afterDrain(waiter)
        return Effect.sync(() => {
          if (this.drainWaiter === waiter) this.drainWaiter = undefined
        })
      })
    })
  }

  close(): void {
    const socket = this.tcp
    socket.off("data", onData)
    socket.off("end", onEnd)
    socket.off("close", onClose)
    socket.off("drain", onDrain)
    // keeps its error listener: an error after this point must not crash the process
    socket[WIRE] = undefined
    this.chunks = []
    if (socket.closed === false) socket.destroySoon()
  }
}

/** The wire of a TCP or TLS socket the listener accepted (and paused). */
export const fromNetSocket = (socket: Net.Socket): Wire => new NetWire(socket)

/** A wire over an Effect `Socket` (a WebSocket): a fiber in its scope moves what the socket reads into the inbox. */
class SocketWire extends Inbox implements Wire {
  readonly direct = false
  readonly writer: Socket.Writer
  readonly tcp: Net.Socket | undefined

  constructor(writer: Socket.Writer, tcp: Net.Socket | undefined) {
    super()
    this.writer = writer
    this.tcp = tcp
  }

  close(): void {}
}

/**
 * The wire of an Effect `Socket` (a WebSocket), in the current scope: the scope's end closes it.
 * `upgrade` is the HTTP request that opened it, whose socket is the peer's.
 */
export const fromSocket = (
  socket: Socket.Socket,
  upgrade: Http.IncomingMessage | undefined
): Effect.Effect<Wire, Socket.SocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const pull = yield* Socket.readerBytes(socket)
    const writer = yield* socket.writer
    const wire = new SocketWire(writer, upgrade?.socket)
    const pump: Effect.Effect<never, Socket.SocketError> = Effect.forever(
      Effect.map(pull, (chunks) => {
        for (const chunk of chunks) wire.received(chunk)
      })
    )
    yield* Effect.forkScoped(Effect.catch(pump, (error) => Effect.sync(() => wire.ended(error, false))))
    return wire
  })
