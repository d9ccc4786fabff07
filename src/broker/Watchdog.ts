/**
 * One broker-wide timer for connect timeouts and keepalives. A fiber and a timer per
 * connection would cost memory on every idle client; instead a single sweep every
 * `intervalMs` closes the connections whose deadline has passed (so a deadline is honoured
 * within one interval), and ticks the others (a connection whose reader has waited through a
 * couple of ticks lets it go).
 */
import { Clock, Effect, Schedule } from "effect"

/** A connection as the watchdog sees it. */
export interface Watched {
  /** When it must be closed (epoch ms); `Infinity` for never. */
  readonly deadline: () => number
  /** Closes it (starting its teardown, not waiting for it); called once, after which it is no longer watched. */
  expire(): void
  /** Called at every sweep that does not expire it (a connection lets go of a reader idle for a while). */
  tick(): void
}

/** The set of watched connections. */
export class Watchdog {
  private readonly watched = new Set<Watched>()

  /** Watches `connection` until it expires or is deleted. */
  add(connection: Watched): void {
    this.watched.add(connection)
  }

  /** Stops watching `connection`. */
  delete(connection: Watched): void {
    this.watched.delete(connection)
  }

  /** Expires every connection whose deadline is at or before `now`. */
  sweep(now: number): Effect.Effect<void> {
    return Effect.sync(() => {
      for (const connection of this.watched) {
        if (connection.deadline() <= now) {
          this.watched.delete(connection)
          connection.expire()
        } else {
          connection.tick()
        }
      }
    })
  }

  /** Sweeps every `intervalMs` by Effect's `Clock` (so `TestClock` drives it) until interrupted (run it in the broker's scope). */
  run(intervalMs: number): Effect.Effect<void> {
    return Effect.asVoid(
      Effect.repeat(Effect.flatMap(Clock.currentTimeMillis, (now) => this.sweep(now)), Schedule.spaced(intervalMs))
    )
  }
}
