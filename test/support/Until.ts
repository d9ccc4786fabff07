/**
 * Waiting, inside an Effect test, for something another fiber or process brings about.
 *
 * @module
 */
import { Effect } from "effect"

/** Succeeds once `check()` holds (polled every 10 ms); dies naming `what` after 5 s. */
export const until = (what: string, check: () => boolean): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      if (check()) return
      yield* Effect.sleep(10)
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })
