/**
 * A connection's outbound bytes: producers (its own handlers and other clients'
 * deliveries) append synchronously; one writer fiber drains what is queued in batched socket
 * writes, so a burst of deliveries costs one write, not one per packet.
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
 */
import { Clock, Effect, Exit, Scope } from "effect"
import * as Socket from "effect/socket/Socket"
import type { Traffic } from "../observability/Stats.ts"

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
  /** Runs the writer until `close` and everything queued before it is written. */
  readonly run: Effect.Effect<void, Socket.SocketError>
  /** Stops accepting bytes; `run` ends once what is queued is written. */
  readonly close: () => void
}

/**
 * Creates an outbox writing to `writer`; QoS 0 is never queued past `maxBytes`. Packets queued and
 * bytes written are added to `traffic` (the broker's `Stats`).
 */
export const make = (writer: Socket.Writer, maxBytes: number, traffic: Traffic = { packetsSent: 0, bytesSent: 0 }): Outbox => {
  // queued chunks are buffer[head..]; a write takes a prefix (at most MAX_WRITE_BYTES)
  let buffer: Array<Uint8Array> = []
  let head = 0
  let pendingBytes = 0
  let open = true
  let wake: (() => void) | undefined
  let scheduled = false

  let subscriber: Subscriber | undefined
  let highWater = Infinity
  let lowWater = Infinity
  // progress: writes completed so far (the monitor compares it across its ticks)
  let writes = 0
  let stalled = false
  let dropped = 0
  let droppedSinceReport = 0
  let peakBytes = 0
  let lastReport = -Infinity
  let waiters = new Set<() => void>()
  // the monitor: forked in `runScope` at the first congestion, then parked between congestions
  let runScope: Scope.Closeable | undefined
  let monitorStarted = false
  let wakeMonitor: (() => void) | undefined

  const signal = () => {
    scheduled = false
    const resume = wake
    wake = undefined
    resume?.()
  }
  // times waiting publishers were released (the monitor bounds how long one set may wait)
  let releases = 0
  const releaseWaiters = () => {
    if (waiters.size === 0) return
    releases++
    const released = waiters
    waiters = new Set()
    for (const resume of released) resume()
  }
  const holdsBack = () => open && !stalled && pendingBytes > lowWater
  const send = (bytes: Uint8Array) => {
    if (!open) return
    pendingBytes += bytes.length
    traffic.packetsSent++
    buffer.push(bytes)
    // wake the writer once the current burst of handlers is done, not per packet: resuming it
    // here would write every packet with its own syscall
    if (!scheduled && wake !== undefined) {
      scheduled = true
      setImmediate(signal)
    }
  }
  const waitForBytes = Effect.callback<void>((resume) => {
    wake = () => resume(Effect.void)
    return Effect.sync(() => {
      wake = undefined
    })
  })
  const flush = Effect.suspend(() => {
    let end = head
    let size = 0
    while (end < buffer.length && size < MAX_WRITE_BYTES) size += buffer[end++]!.length
    let chunks: Array<Uint8Array>
    if (head === 0 && end === buffer.length) {
      chunks = buffer
      buffer = []
    } else {
      chunks = buffer.slice(head, end)
      head = end
      if (head === buffer.length) {
        buffer = []
        head = 0
      } else if (head >= 4096 && head * 2 >= buffer.length) {
        buffer = buffer.slice(head)
        head = 0
      }
    }
    return Effect.ensuring(
      writer.writeAll(chunks as [Uint8Array, ...Array<Uint8Array>]),
      Effect.sync(() => {
        pendingBytes -= size
        traffic.bytesSent += size
        writes++
        // a completed write is progress: a stalled subscriber that reads again is healthy again
        stalled = false
        if (pendingBytes <= lowWater) releaseWaiters()
      })
    )
  })
  const run = Effect.gen(function*() {
    const scope = yield* Scope.make()
    runScope = scope
    yield* Effect.whileLoop({
      while: () => open || head < buffer.length,
      body: () => (head < buffer.length ? flush : waitForBytes),
      step: () => {}
    }).pipe(Effect.ensuring(Scope.close(scope, Exit.void)))
  })

  const park = Effect.callback<void>((resume) => {
    wakeMonitor = () => resume(Effect.void)
    return Effect.sync(() => {
      wakeMonitor = undefined
    })
  })
  /** One log line; one that carries drops starts a new rate-limit interval. */
  const report = (reason: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const line = `slow consumer ${subscriber?.clientId}: ${reason}; ${pendingBytes} bytes waiting (peak ${peakBytes}, cap ${maxBytes}), ` +
        `${droppedSinceReport} QoS 0 message(s) dropped since the last report, ${dropped} in all`
      if (droppedSinceReport > 0) {
        droppedSinceReport = 0
        lastReport = now
      }
      return Effect.logWarning(line)
    })
  /** Closes a stalled connection; its teardown keeps the session (and its QoS 1/2 messages) as for any lost connection. */
  const disconnect = (idleMs: number) =>
    Effect.gen(function*() {
      yield* report(`no write completed for ${idleMs} ms, closing the connection`)
      const packet = subscriber?.disconnectPacket
      // best effort: a client that does not read will not see it, one that just resumed will
      if (packet !== undefined) yield* Effect.ignore(writer.write(packet))
      yield* Effect.ignore(writer.write(new Socket.CloseEvent(1000, "slow consumer")))
      open = false
      releaseWaiters()
    })
  /** Watches one congestion: stall detection, drop reports, the disconnect. Returns when drained and reported. */
  const watchCongestion = Effect.gen(function*() {
    const { slowConsumerMs, disconnectMs } = subscriber!
    // a stall is seen within a quarter of slowConsumerMs of its deadline
    const tick = Math.max(1, Math.floor(slowConsumerMs / 4))
    let seen = writes
    let idleMs = 0
    let seenReleases = releases
    let heldMs = 0
    while (open && (pendingBytes > lowWater || droppedSinceReport > 0)) {
      yield* Effect.sleep(tick)
      if (writes !== seen || pendingBytes === 0) {
        seen = writes
        idleMs = 0
      } else {
        idleMs += tick
      }
      if (!stalled && idleMs >= slowConsumerMs) {
        stalled = true
        releaseWaiters()
        yield* report(`no write completed for ${idleMs} ms, publishers no longer wait for it`)
      }
      if (disconnectMs > 0 && idleMs >= disconnectMs) return yield* disconnect(idleMs)
      // a publisher never waits longer than slowConsumerMs, even for a subscriber that progresses
      // but never gets back to the low-water mark (others keep it full): it sends one more packet
      if (waiters.size > 0 && releases === seenReleases) heldMs += tick
      else {
        seenReleases = releases
        heldMs = 0
      }
      if (heldMs >= slowConsumerMs) releaseWaiters()
      if (droppedSinceReport > 0 && (yield* Clock.currentTimeMillis) - lastReport >= DROP_LOG_INTERVAL_MS) {
        yield* report("dropping QoS 0 beyond the cap")
      }
    }
  })
  const monitor = Effect.gen(function*() {
    while (open) {
      yield* watchCongestion
      peakBytes = 0
      if (open) yield* park
    }
  })

  return {
    send,
    configure: (next) => {
      subscriber = next
      highWater = Math.min(next.highWaterBytes, maxBytes)
      lowWater = Math.floor(highWater / 2)
    },
    congested: () => pendingBytes > highWater,
    admit: (size) => {
      if (pendingBytes + size > maxBytes) {
        dropped++
        droppedSinceReport++
        return false
      }
      if (pendingBytes + size > peakBytes) peakBytes = pendingBytes + size
      return true
    },
    holdsBack,
    drained: Effect.suspend(() =>
      holdsBack()
        ? Effect.callback<void>((resume) => {
          const waiter = () => resume(Effect.void)
          waiters.add(waiter)
          return Effect.sync(() => {
            waiters.delete(waiter)
          })
        })
        : Effect.void
    ),
    watch: Effect.suspend(() => {
      if (wakeMonitor !== undefined) {
        const resume = wakeMonitor
        wakeMonitor = undefined
        resume()
        return Effect.void
      }
      if (monitorStarted || runScope === undefined || subscriber === undefined || !open) return Effect.void
      monitorStarted = true
      return Effect.asVoid(Effect.forkIn(monitor, runScope))
    }),
    stalled: () => stalled,
    dropped: () => dropped,
    pendingBytes: () => pendingBytes,
    run,
    close: () => {
      open = false
      releaseWaiters()
      const resume = wakeMonitor
      wakeMonitor = undefined
      resume?.()
      signal()
    }
  }
}
