/**
 * The broker-wide bound on bytes of partly received packets (`--max-receiving-bytes`). A large
 * packet's buffer is taken from it when the packet's header arrives and given back once the
 * packet is complete; a connection whose packet does not fit stops reading its socket until the
 * room is granted, so a flood of large uploads is paid for by the uploaders' waiting (TCP pushes
 * back on them), not by the broker's memory or by other clients. Grants are first come, first
 * served, so a large packet is not starved by a stream of smaller ones.
 */
import { Effect } from "effect"
import type { FrameAllowance } from "../protocol/Frame.ts"

interface Waiter {
  readonly bytes: number
  readonly grant: () => void
}

/** Bytes of partly received packets, across all connections. */
export class ReceiveBudget implements FrameAllowance {
  /** The bound, in bytes. */
  readonly limit: number
  private free: number
  private readonly waiters: Array<Waiter> = []

  constructor(limit: number) {
    this.limit = limit
    this.free = limit
  }

  /** Bytes currently taken. */
  get inUse(): number {
    return this.limit - this.free
  }

  /** Connections waiting for room. */
  get waiting(): number {
    return this.waiters.length
  }

  /** Takes `bytes` now if they are free and nobody waits before us. */
  readonly tryTake = (bytes: number): boolean => {
    if (this.waiters.length > 0 || bytes > this.free) return false
    this.free -= bytes
    return true
  }

  /** Gives back `bytes` and grants waiters, oldest first, while they fit. */
  readonly give = (bytes: number): void => {
    this.free += bytes
    while (this.waiters.length > 0 && this.waiters[0]!.bytes <= this.free) {
      const waiter = this.waiters.shift()!
      this.free -= waiter.bytes
      waiter.grant()
    }
  }

  /**
   * Waits until `bytes` are free, then hands them to `onGrant` synchronously with the grant, so
   * no granted byte is lost if the waiting fiber is interrupted right after.
   */
  take(bytes: number, onGrant: (bytes: number) => void): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      if (this.tryTake(bytes)) {
        onGrant(bytes)
        resume(Effect.void)
        return
      }
      const waiter: Waiter = {
        bytes,
        grant: () => {
          onGrant(bytes)
          resume(Effect.void)
        }
      }
      this.waiters.push(waiter)
      return Effect.sync(() => {
        const index = this.waiters.indexOf(waiter)
        if (index === -1) return
        this.waiters.splice(index, 1)
        // those behind it may fit now
        this.give(0)
      })
    })
  }
}
