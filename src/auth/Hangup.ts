/**
 * SIGHUP, as Mosquitto uses it: "read your files again". The signal arrives outside any fiber,
 * so it is queued and `reload` runs in a fiber of the caller's scope, one reload at a time; the
 * handler is removed when the scope closes.
 */
import { Effect, Queue, type Scope } from "effect"

/** Runs `reload` on every SIGHUP for as long as the current scope lives. */
export const onHangup = (reload: Effect.Effect<void>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const hangups = yield* Queue.unbounded<void>()
    const onSignal = () => void Queue.offerUnsafe(hangups, undefined)
    yield* Effect.acquireRelease(
      Effect.sync(() => process.on("SIGHUP", onSignal)),
      () => Effect.sync(() => process.off("SIGHUP", onSignal))
    )
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(hangups), () => reload)))
  })
