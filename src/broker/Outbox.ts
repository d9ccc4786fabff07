/**
 * A connection's outbound bytes: producers (its own handlers and other clients'
 * deliveries) append synchronously; what is queued goes out in batched socket writes once per
 * burst, so a burst of deliveries costs one write, not one per packet.
 *
 * Slow-consumer policy (README "Slow consumers"; `FlowControl` applies it to QoS 0):
 * - up to the high-water mark everything is queued and nobody waits;
 * - above it a QoS 0 delivery is still queued while it keeps the outbox within `maxBytes`, and
 *   its publisher is asked to wait (`drained`) until the outbox is back at the low-water mark
 *   (half the high-water mark), for `slowConsumerMs` at most — that is TCP backpressure on the
 *   publisher, not loss;
 * - a subscriber whose writer has completed no write for `slowConsumerMs` while over the
 *   high-water mark is stalled: nobody waits for it any more, QoS 0 beyond `maxBytes` is dropped
 *   (counted, logged at most once per `DROP_LOG_INTERVAL_MS`), and after `disconnectMs` of no
 *   progress the connection is closed (MQTT 5: DISCONNECT 0x97 Quota exceeded first).
 * QoS 1/2 and the connection's own packets are never dropped here: the in-flight window and the
 * session queue bound them.
 *
 * Time is only read by the monitor fiber (Effect's Clock), which runs only while the outbox is
 * congested; a delivery that finds no congestion costs one comparison.
 *
 * Memory: every connection has one, mostly idle (issue 16: memory per idle connection). So it is
 * one object whose methods live on the prototype, not ~25 closures over a shared scope, and the
 * Effects of the slow-consumer machinery (monitor, reports, waiting publishers) are built only
 * when a congestion needs them. Over a `DirectWriter` (a TCP or TLS socket) there is no writer
 * fiber at all: the connection's reader writes its own outbox when it has handled a read
 * (`flushNow`: a subscriber's PUBACKs and the messages they release into its window make one round
 * trip, not one plus the rest of the event loop's turn), one `setImmediate` for every outbox sent
 * to in the turn writes whatever is still queued at its end (deliveries from other connections, one
 * write per outbox for all of them), and a full socket buffer waits for its drain event; only an Effect
 * `Socket.Writer` (a WebSocket) gets a writer fiber. Several queued packets go to the socket as
 * one buffer.
 */
import { Clock, Effect, Exit, Scope } from "effect"
import * as Socket from "effect/socket/Socket"
import type { Traffic } from "../observability/Stats.ts"
import type { DirectWriter } from "../transport/Wire.ts"

/** Largest batch handed to the socket in one write, so write completions (progress) stay frequent on slow links. */
const MAX_WRITE_BYTES = 64 * 1024

/** At most one drop report per client in this time. */
export const DROP_LOG_INTERVAL_MS = 10_000

/** Who the outbox writes to and the slow-consumer limits that apply, known once the client is connected. */
export interface Subscriber {
  /** For log lines. */
  readonly clientId: string
  /** Above this many waiting bytes, QoS 0 deliveries make their publisher wait; the low-water mark is half of it. */
  readonly highWaterBytes: number
  /** No write completed for this long while congested: the subscriber is stalled. */
  readonly slowConsumerMs: number
  /** No write completed for this long while congested: the connection is closed (0: never). */
  readonly disconnectMs: number
  /** Sent (best effort) before closing a stalled connection: MQTT 5 DISCONNECT 0x97. */
  readonly disconnectPacket?: Uint8Array | undefined
}

const isDirect = (writer: Socket.Writer): writer is DirectWriter => "writeNow" in writer

/** The outbound side of one connection. */
export interface Outbox {
  /** Queues bytes that must be sent (never dropped). */
  readonly send: (bytes: Uint8Array) => void
  /** Sets who this outbox writes to and the limits that apply (at CONNECT). */
  readonly configure: (subscriber: Subscriber) => void
  /** Whether more than the high-water mark is waiting: the one check on the delivery hot path. */
  readonly congested: () => boolean
  /**
   * Whether a QoS 0 packet of `size` bytes may be queued while congested: `false` means it is
   * dropped (it would take the outbox past `maxBytes`) and counted.
   */
  readonly admit: (size: number) => boolean
  /** Whether a publisher should wait for this outbox: over the low-water mark, open, not stalled. */
  readonly holdsBack: () => boolean
  /** Completes once the outbox no longer holds publishers back (drained to the low-water mark, stalled or closed). */
  readonly drained: Effect.Effect<void>
  /** Starts (or wakes) the monitor that detects a stall, reports drops and closes a stalled connection. */
  readonly watch: Effect.Effect<void>
  /** Whether the subscriber is stalled (no write completed for `slowConsumerMs` while congested). */
  readonly stalled: () => boolean
  /** How many QoS 0 packets were dropped. */
  readonly dropped: () => number
  /** Bytes queued or being written. */
  readonly pendingBytes: () => number
  /** Runs the writer until `close` and everything queued before it is written (for a writer that is not direct). */
  readonly run: Effect.Effect<void, Socket.SocketError>
  /**
   * Starts writing in the current scope (a fiber running `run` for a writer that is not direct);
   * the slow-consumer monitor, when a congestion needs it, runs in that scope too. Optional for a
   * direct writer (it writes from `send`): without a scope, its monitor runs detached.
   */
  readonly start: Effect.Effect<void, never, Scope.Scope>
  /** Completes once the outbox is closed and what was queued is written (or the socket failed). */
  readonly finished: Effect.Effect<void>
  /** Stops accepting bytes; `run` ends once what is queued is written. */
  readonly close: () => void
  /**
   * Writes what is queued now rather than at the burst's `setImmediate` (a direct writer; a
   * writer fiber is left to it): the connection's reader calls it once the bytes it was given are
   * handled, so what they produced for this client goes out before other sockets are read.
   */
  readonly flushNow: () => void
}

/**
 * The outboxes sent to in this turn of the event loop, woken by one `setImmediate` for all of
 * them: a publisher fanning out to 50 subscribers schedules one Immediate (and its async context)
 * per read, not 50. Woken in the order they were first sent to; what their writes set off (sends
 * to other outboxes) waits for the next turn, as with an Immediate of its own.
 */
let due: Array<OutboxImpl> = []
let spare: Array<OutboxImpl> = []

/** `setImmediate` callback: wakes every outbox sent to since the last one. */
const signalWriters = (): void => {
  const woken = due
  due = spare
  for (let i = 0; i < woken.length; i++) woken[i]!.signal()
  woken.length = 0
  spare = woken
}

/** Wakes `outbox`'s writer once the current burst of handlers is done. */
const scheduleSignal = (outbox: OutboxImpl): void => {
  if (due.push(outbox) === 1) setImmediate(signalWriters)
}

class OutboxImpl implements Outbox {
  // queued chunks are buffer[head..]; a write takes a prefix (at most MAX_WRITE_BYTES)
  private buffer: Array<Uint8Array> = []
  private head = 0
  private bytes = 0
  private open = true
  private wake: (() => void) | undefined = undefined
  private scheduled = false

  private subscriber: Subscriber | undefined = undefined
  private highWater = Infinity
  private lowWater = Infinity
  // progress: writes completed so far (the monitor compares it across its ticks)
  private writes = 0
  private isStalled = false
  private droppedCount = 0
  private droppedSinceReport = 0
  private peakBytes = 0
  private lastReport = -Infinity
  // publishers waiting for the drain; created at the first one
  private waiters: Set<() => void> | undefined = undefined
  // times waiting publishers were released (the monitor bounds how long one set may wait)
  private releases = 0
  // the monitor: forked in `runScope` at the first congestion, then parked between congestions
  private runScope: Scope.Scope | undefined = undefined
  private monitorStarted = false
  private wakeMonitor: (() => void) | undefined = undefined
  // a direct writer: set while a write waits for the socket to drain; `done` once nothing more will be written
  private draining = false
  private done = false
  private whenDone: (() => void) | undefined = undefined

  /** Bytes queued or being written; a function of its own, as callers keep it apart from the outbox. */
  readonly pendingBytes: () => number

  private readonly writer: Socket.Writer
  private readonly direct: DirectWriter | undefined
  private readonly maxBytes: number
  private readonly traffic: Traffic

  constructor(writer: Socket.Writer, maxBytes: number, traffic: Traffic) {
    this.writer = writer
    this.direct = isDirect(writer) ? writer : undefined
    this.maxBytes = maxBytes
    this.traffic = traffic
    this.pendingBytes = () => this.bytes
  }

  flushNow(): void {
    if (this.direct !== undefined && this.head < this.buffer.length) this.pump()
  }

  /** Resumes the writer parked in `waitForBytes` (if it is). */
  signal(): void {
    this.scheduled = false
    if (this.direct !== undefined) return this.pump()
    const resume = this.wake
    this.wake = undefined
    resume?.()
  }

  private releaseWaiters(): void {
    const waiters = this.waiters
    if (waiters === undefined || waiters.size === 0) return
    this.releases++
    this.waiters = undefined
    for (const resume of waiters) resume()
  }

  holdsBack(): boolean {
    return this.open && !this.isStalled && this.bytes > this.lowWater
  }

  send(bytes: Uint8Array): void {
    if (!this.open) return
    this.bytes += bytes.length
    this.traffic.packetsSent++
    this.buffer.push(bytes)
    // wake the writer once the current burst of handlers is done, not per packet: resuming it
    // here would write every packet with its own syscall
    if (!this.scheduled && (this.direct !== undefined ? !this.draining : this.wake !== undefined)) {
      this.scheduled = true
      scheduleSignal(this)
    }
  }

  configure(next: Subscriber): void {
    this.subscriber = next
    this.highWater = Math.min(next.highWaterBytes, this.maxBytes)
    this.lowWater = Math.floor(this.highWater / 2)
  }

  congested(): boolean {
    return this.bytes > this.highWater
  }

  admit(size: number): boolean {
    if (this.bytes + size > this.maxBytes) {
      this.droppedCount++
      this.droppedSinceReport++
      return false
    }
    if (this.bytes + size > this.peakBytes) this.peakBytes = this.bytes + size
    return true
  }

  stalled(): boolean {
    return this.isStalled
  }

  dropped(): number {
    return this.droppedCount
  }

  close(): void {
    this.open = false
    this.releaseWaiters()
    const resume = this.wakeMonitor
    this.wakeMonitor = undefined
    resume?.()
    // a direct writer writes what is queued now and is done once it is written
    this.signal()
  }

  get drained(): Effect.Effect<void> {
    return Effect.suspend(() =>
      this.holdsBack()
        ? Effect.callback<void>((resume) => {
          const waiter = () => resume(Effect.void)
          const waiters = this.waiters ??= new Set()
          waiters.add(waiter)
          return Effect.sync(() => {
            this.waiters?.delete(waiter)
          })
        })
        : Effect.void
    )
  }

  get watch(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.wakeMonitor !== undefined) {
        const resume = this.wakeMonitor
        this.wakeMonitor = undefined
        resume()
        return Effect.void
      }
      if (this.monitorStarted || this.subscriber === undefined || !this.open) return Effect.void
      this.monitorStarted = true
      // a direct outbox that was not started in a scope has no fiber of its own to hang the monitor
      // on: the monitor then runs on its own, and ends once `close` wakes it
      return Effect.asVoid(this.runScope === undefined ? Effect.forkDetach(this.monitor()) : Effect.forkIn(this.monitor(), this.runScope))
    })
  }

  /** A direct writer: writes what is queued until the socket's buffer is full (then its drain resumes). */
  pump(): void {
    const direct = this.direct!
    while (!this.draining && !this.done && this.head < this.buffer.length) {
      const [chunks, size] = this.take()
      let more: boolean
      try {
        // many small packets (acks, a window of PUBLISHes) cost one socket write as one buffer:
        // a corked write per chunk costs more than copying at most MAX_WRITE_BYTES
        more = direct.writeNow(chunks.length > 1 && size <= MAX_WRITE_BYTES ? [Buffer.concat(chunks, size)] : chunks)
      } catch {
        // the socket is gone: nothing more will be written, and the reader sees the close
        return this.finish()
      }
      if (more) {
        this.written(size)
      } else {
        this.draining = true
        direct.afterDrain((error) => {
          this.draining = false
          if (error !== undefined) return this.finish()
          this.written(size)
          this.pump()
        })
      }
    }
    if (!this.open && !this.draining && this.head >= this.buffer.length) this.finish()
  }

  private finish(): void {
    this.done = true
    this.buffer = []
    this.head = 0
    const resume = this.whenDone
    this.whenDone = undefined
    resume?.()
  }

  get start(): Effect.Effect<void, never, Scope.Scope> {
    if (this.direct === undefined) return Effect.asVoid(Effect.forkScoped(Effect.exit(this.run)))
    return Effect.map(Effect.scope, (scope) => {
      this.runScope = scope
    })
  }

  get finished(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.done) return Effect.void
      return Effect.callback<void>((resume) => {
        this.whenDone = () => resume(Effect.void)
        return Effect.sync(() => {
          this.whenDone = undefined
        })
      })
    })
  }

  get run(): Effect.Effect<void, Socket.SocketError> {
    return Effect.flatMap(Scope.make(), (scope) => {
      this.runScope = scope
      return Effect.whileLoop({
        while: () => this.open || this.head < this.buffer.length,
        body: () => (this.head < this.buffer.length ? this.flush() : this.waitForBytes()),
        step: () => {}
      }).pipe(
        Effect.ensuring(Effect.suspend(() => {
          this.finish()
          return Scope.close(scope, Exit.void)
        }))
      )
    })
  }

  private waitForBytes(): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      this.wake = () => resume(Effect.void)
      return Effect.sync(() => {
        this.wake = undefined
      })
    })
  }

  /** Takes the next batch off the queue (at most MAX_WRITE_BYTES, at least one chunk) and its size. */
  private take(): [Array<Uint8Array>, number] {
    let end = this.head
    let size = 0
    const buffer = this.buffer
    while (end < buffer.length && size < MAX_WRITE_BYTES) size += buffer[end++]!.length
    let chunks: Array<Uint8Array>
    if (this.head === 0 && end === buffer.length) {
      chunks = buffer
      this.buffer = []
    } else {
      chunks = buffer.slice(this.head, end)
      this.head = end
      if (this.head === buffer.length) {
        this.buffer = []
        this.head = 0
      } else if (this.head >= 4096 && this.head * 2 >= buffer.length) {
        this.buffer = buffer.slice(this.head)
        this.head = 0
      }
    }
    return [chunks, size]
  }

  /** A write of `size` bytes completed. */
  private written(size: number): void {
    this.bytes -= size
    this.traffic.bytesSent += size
    this.writes++
    // a completed write is progress: a stalled subscriber that reads again is healthy again
    this.isStalled = false
    if (this.bytes <= this.lowWater) this.releaseWaiters()
  }

  private flush(): Effect.Effect<void, Socket.SocketError> {
    const [chunks, size] = this.take()
    return Effect.ensuring(
      this.writer.writeAll(chunks as [Uint8Array, ...Array<Uint8Array>]),
      Effect.sync(() => this.written(size))
    )
  }

  /** Parks the monitor between congestions (`watch` resumes it). */
  private park(): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      this.wakeMonitor = () => resume(Effect.void)
      return Effect.sync(() => {
        this.wakeMonitor = undefined
      })
    })
  }

  /** One log line; one that carries drops starts a new rate-limit interval. */
  private report(reason: string): Effect.Effect<void> {
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const line = `slow consumer ${this.subscriber?.clientId}: ${reason}; ${this.bytes} bytes waiting (peak ${this.peakBytes}, cap ${this.maxBytes}), ` +
        `${this.droppedSinceReport} QoS 0 message(s) dropped since the last report, ${this.droppedCount} in all`
      if (this.droppedSinceReport > 0) {
        this.droppedSinceReport = 0
        this.lastReport = now
      }
      return Effect.logWarning(line)
    })
  }

  /** Closes a stalled connection; its teardown keeps the session (and its QoS 1/2 messages) as for any lost connection. */
  private disconnect(idleMs: number): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      yield* self.report(`no write completed for ${idleMs} ms, closing the connection`)
      const packet = self.subscriber?.disconnectPacket
      // best effort: a client that does not read will not see it, one that just resumed will
      if (packet !== undefined) yield* Effect.ignore(self.writer.write(packet))
      yield* Effect.ignore(self.writer.write(new Socket.CloseEvent(1000, "slow consumer")))
      self.open = false
      self.releaseWaiters()
    })
  }

  /** Watches one congestion: stall detection, drop reports, the disconnect. Returns when drained and reported. */
  private watchCongestion(): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      const { slowConsumerMs, disconnectMs } = self.subscriber!
      // a stall is seen within a quarter of slowConsumerMs of its deadline
      const tick = Math.max(1, Math.floor(slowConsumerMs / 4))
      let seen = self.writes
      let idleMs = 0
      let seenReleases = self.releases
      let heldMs = 0
      while (self.open && (self.bytes > self.lowWater || self.droppedSinceReport > 0)) {
        yield* Effect.sleep(tick)
        if (self.writes !== seen || self.bytes === 0) {
          seen = self.writes
          idleMs = 0
        } else {
          idleMs += tick
        }
        if (!self.isStalled && idleMs >= slowConsumerMs) {
          self.isStalled = true
          self.releaseWaiters()
          yield* self.report(`no write completed for ${idleMs} ms, publishers no longer wait for it`)
        }
        if (disconnectMs > 0 && idleMs >= disconnectMs) return yield* self.disconnect(idleMs)
        // a publisher never waits longer than slowConsumerMs, even for a subscriber that progresses
        // but never gets back to the low-water mark (others keep it full): it sends one more packet
        if ((self.waiters?.size ?? 0) > 0 && self.releases === seenReleases) heldMs += tick
        else {
          seenReleases = self.releases
          heldMs = 0
        }
        if (heldMs >= slowConsumerMs) self.releaseWaiters()
        if (self.droppedSinceReport > 0 && (yield* Clock.currentTimeMillis) - self.lastReport >= DROP_LOG_INTERVAL_MS) {
          yield* self.report("dropping QoS 0 beyond the cap")
        }
      }
    })
  }

  private monitor(): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      while (self.open) {
        yield* self.watchCongestion()
        self.peakBytes = 0
        if (self.open) yield* self.park()
      }
    })
  }
}

/**
 * Creates an outbox writing to `writer`; QoS 0 is never queued past `maxBytes`. Packets queued and
 * bytes written are added to `traffic` (the broker's `Stats`).
 */
export const make = (writer: Socket.Writer, maxBytes: number, traffic: Traffic = { packetsSent: 0, bytesSent: 0 }): Outbox =>
  new OutboxImpl(writer, maxBytes, traffic)
