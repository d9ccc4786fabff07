/**
 * One mutex per client id. Everything that changes a session and sends what the change
 * produced (a delivery, an ack, CONNECT, the end of a connection) runs under its client's
 * lock, so packet ids go out in the order they were allocated and a session never switches
 * between online and offline in the middle of a delivery. Locks are never nested.
 */
import { Effect, Semaphore } from "effect"

interface Entry {
  readonly semaphore: Semaphore.Semaphore
  users: number
}

/** A map of lazily created, reference-counted mutexes. */
export class KeyedLock {
  private readonly entries = new Map<string, Entry>()

  /** Runs `effect` holding the lock for `key`. */
  withLock<A, E, R>(key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.suspend(() => {
      let entry = this.entries.get(key)
      if (entry === undefined) {
        entry = { semaphore: Semaphore.makeUnsafe(1), users: 0 }
        this.entries.set(key, entry)
      }
      const held = entry
      held.users++
      return held.semaphore.withPermits(1)(effect).pipe(
        Effect.ensuring(Effect.sync(() => {
          // the entry goes when nobody holds or waits for it, so locks do not leak per client id
          if (--held.users === 0) this.entries.delete(key)
        }))
      )
    })
  }

  /** Number of keys currently locked or awaited (diagnostics, tests). */
  get size(): number {
    return this.entries.size
  }
}
