/**
 * A connection's outbound bytes: producers (its own handlers and other clients'
 * deliveries) append synchronously; one writer fiber drains everything queued in one
 * batched socket write, so a burst of deliveries costs one write, not one per packet.
 *
 * Slow-consumer policy: once more than `maxBytes` are waiting, QoS 0 publishes to this
 * client are dropped (and counted). QoS 1/2 are bounded by the in-flight window and the
 * session queue instead, so they are never dropped here.
 */
import { Effect } from "effect"
import type * as Socket from "effect/socket/Socket"

/** The outbound side of one connection. */
export interface Outbox {
  /** Queues bytes that must be sent. */
  readonly send: (bytes: Uint8Array) => void
  /** Whether droppable bytes would be dropped now (checked before encoding them). */
  readonly congested: () => boolean
  /** How many droppable packets were dropped. */
  readonly dropped: () => number
  /** Runs the writer until `close` and everything queued before it is written. */
  readonly run: Effect.Effect<void, Socket.SocketError>
  /** Stops accepting bytes; `run` ends once what is queued is written. */
  readonly close: () => void
}

/** Creates an outbox writing to `writer`. */
export const make = (writer: Socket.Writer, maxBytes: number): Outbox => {
  let buffer: Array<Uint8Array> = []
  let pendingBytes = 0
  let dropped = 0
  let open = true
  let wake: (() => void) | undefined
  let scheduled = false

  const signal = () => {
    scheduled = false
    const resume = wake
    wake = undefined
    resume?.()
  }
  const send = (bytes: Uint8Array) => {
    if (!open) return
    pendingBytes += bytes.length
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
    const chunks = buffer as [Uint8Array, ...Array<Uint8Array>]
    buffer = []
    let size = 0
    for (const chunk of chunks) size += chunk.length
    return Effect.ensuring(
      writer.writeAll(chunks),
      Effect.sync(() => {
        pendingBytes -= size
      })
    )
  })
  const run = Effect.whileLoop({
    while: () => open || buffer.length > 0,
    body: () => (buffer.length > 0 ? flush : waitForBytes),
    step: () => {}
  })
  return {
    send,
    dropped: () => dropped,
    congested: () => {
      if (pendingBytes <= maxBytes) return false
      dropped++
      return true
    },
    run,
    close: () => {
      open = false
      signal()
    }
  }
}
