/**
 * A deliberately broken provider for the suite's self-test: `modify` reads, yields (as any
 * asynchronous store would), then writes, so concurrent updates of one session can overwrite
 * each other. Sequential use is correct, which is exactly why the concurrency property exists.
 */
import { Effect, Layer, Option } from "effect"
import type { SessionState } from "../../src/session/SessionState.ts"
import { SessionStateProvider } from "../../src/session/SessionStateProvider.ts"

export const layer: Layer.Layer<SessionStateProvider> = Layer.sync(SessionStateProvider, () => {
  const sessions = new Map<string, SessionState>()
  return SessionStateProvider.of({
    get: (clientId) => Effect.sync(() => Option.fromUndefinedOr(sessions.get(clientId))),
    store: (state) => Effect.sync(() => void sessions.set(state.clientId, state)),
    remove: (clientId) => Effect.sync(() => void sessions.delete(clientId)),
    modify: (clientId, update) =>
      Effect.gen(function*() {
        const current = Option.fromUndefinedOr(sessions.get(clientId))
        yield* Effect.yieldNow
        const [result, next] = update(current)
        if (Option.isSome(next)) sessions.set(clientId, next.value)
        else sessions.delete(clientId)
        return result
      }),
    clientIds: Effect.sync(() => [...sessions.keys()])
  })
})
