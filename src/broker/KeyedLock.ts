/**
 * One mutex per client id. Everything that changes a session and sends what the change
 * produced (a delivery, an ack, CONNECT, the end of a connection) runs under its client's
 * lock, so packet ids go out in the order they were allocated and a session never switches
 * between online and offline in the middle of a delivery. Locks are never nested.
 *
 * Hand-rolled rather than a Semaphore per key: almost every acquisition is uncontended, and
 * then taking the lock is one Map lookup. Waiters are served first come, first served.
 *
 * A synchronous section (no Effect, nothing awaited) cannot interleave with anything, so it
 * needs no lock at all, only the guarantee that nobody holds or waits for it: `isFree`. That is
 * the hot path of deliveries and acknowledgements over the memory provider; when the lock is
 * taken, they queue behind its holder with `withLock` like everything else, so order is kept.
 */
import { Effect } from "effect"

/** A held lock and the fibers waiting for it. */
interface Held {
  readonly waiters: Array<() => void>
}

/** A map of lazily created mutexes; an entry exists exactly while its lock is held. */
export class KeyedLock {
  private readonly held = new Map<string, Held>()

  /** Passes the lock to the next waiter, or frees it. */
  private release(key: string, entry: Held): void {
    const next = entry.waiters.shift()
    if (next !== undefined) next()
    else this.held.delete(key)
  }

  /** Waits (interruptibly) until the holder passes the lock on. */
  private wait(key: string, entry: Held): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      let handed = false
      const waiter = () => {
        handed = true
        resume(Effect.void)
      }
      entry.waiters.push(waiter)
      return Effect.sync(() => {
        // interrupted: leave the queue, or pass on a lock that was handed over in the meantime
        const index = entry.waiters.indexOf(waiter)
        if (index >= 0) entry.waiters.splice(index, 1)
        else if (handed) this.release(key, entry)
      })
    })
  }

  /** Runs `effect` holding the lock for `key`. */
  withLock<A, E, R>(key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const entry = this.held.get(key)
        if (entry === undefined) {
          const taken: Held = { waiters: [] }
          this.held.set(key, taken)
          return Effect.ensuring(restore(effect), Effect.sync(() => this.release(key, taken)))
        }
        return Effect.flatMap(
          restore(this.wait(key, entry)),
          () => Effect.ensuring(restore(effect), Effect.sync(() => this.release(key, entry)))
        )
      })
    )
  }

  /**
   * Whether nobody holds or waits for `key`'s lock: a synchronous section run now behaves as if
   * it had taken the lock (nothing can run before it ends) and overtakes nobody.
   */
  isFree(key: string): boolean {
    return !this.held.has(key)
  }

  /** Number of keys currently locked (diagnostics, tests). */
  get size(): number {
    return this.held.size
  }
}
