/**
 * The default provider: sessions in a `Map<clientId, SessionState>` of this process. Fast, single
 * machine, no persistence.
 *
 * Why a plain `Map` and no `Ref`: every update is a pure function applied synchronously in one
 * step (read the session, store its successor), so nothing can interleave with it and it is atomic
 * by construction; the states themselves are immutable values, so what `get` returned never
 * changes under its reader. That also lets the provider offer `modifySync`, which the broker's
 * per-message path uses to change a session without building an Effect for it (an immutable
 * `HashMap` in a `Ref` cost a hash-trie path copy and a fiber step per message).
 */
import { Effect, Layer, Option } from "effect"
import type { SessionState } from "./SessionState.ts"
import { SessionStateProvider, type SessionUpdate } from "./SessionStateProvider.ts"

/** Builds a memory provider with its own empty map. */
export const make: Effect.Effect<SessionStateProvider["Service"]> = Effect.sync(() => {
  const sessions = new Map<string, SessionState>()
  const modifySync = <A>(clientId: string, update: SessionUpdate<A>): A => {
    const current = sessions.get(clientId)
    const [result, next] = update(current === undefined ? Option.none() : Option.some(current))
    if (Option.isSome(next)) {
      if (next.value !== current) sessions.set(clientId, next.value)
    } else if (current !== undefined) {
      sessions.delete(clientId)
    }
    return result
  }
  return SessionStateProvider.of({
    get: (clientId) => Effect.sync(() => Option.fromUndefinedOr(sessions.get(clientId))),
    store: (state) => Effect.sync(() => void sessions.set(state.clientId, state)),
    remove: (clientId) => Effect.sync(() => void sessions.delete(clientId)),
    modify: (clientId, update) => Effect.sync(() => modifySync(clientId, update)),
    modifySync,
    clientIds: Effect.sync(() => Array.from(sessions.keys()))
  })
})

/** The memory provider as a Layer. */
export const layer: Layer.Layer<SessionStateProvider> = Layer.effect(SessionStateProvider, make)
