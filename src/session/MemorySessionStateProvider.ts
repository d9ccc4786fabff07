/**
 * The default provider: a `Ref` of an immutable `HashMap<clientId, SessionState>`.
 * Fast, single machine, no persistence.
 *
 * Why `Ref` and not `SynchronizedRef`: updates are pure functions, and `Ref.modify` applies one
 * synchronously in a single step, so no other fiber can interleave: it is atomic by construction.
 * `SynchronizedRef` adds a semaphore that only effectful updates need.
 */
import { Effect, HashMap, Layer, Option, Ref } from "effect"
import type { SessionState } from "./SessionState.ts"
import { SessionStateProvider, type SessionUpdate } from "./SessionStateProvider.ts"

/** Builds a memory provider with its own empty map. */
export const make: Effect.Effect<SessionStateProvider["Service"]> = Effect.gen(function*() {
  const ref = yield* Ref.make(HashMap.empty<string, SessionState>())
  const modify = <A>(clientId: string, update: SessionUpdate<A>) =>
    Ref.modify(ref, (sessions): [A, HashMap.HashMap<string, SessionState>] => {
      const [result, next] = update(HashMap.get(sessions, clientId))
      return [
        result,
        Option.isSome(next) ? HashMap.set(sessions, clientId, next.value) : HashMap.remove(sessions, clientId)
      ]
    })
  return SessionStateProvider.of({
    get: (clientId) => Effect.map(Ref.get(ref), HashMap.get(clientId)),
    store: (state) => Ref.update(ref, HashMap.set(state.clientId, state)),
    remove: (clientId) => Ref.update(ref, HashMap.remove(clientId)),
    modify,
    clientIds: Effect.map(Ref.get(ref), (sessions) => Array.from(HashMap.keys(sessions)))
  })
})

/** The memory provider as a Layer. */
export const layer: Layer.Layer<SessionStateProvider> = Layer.effect(SessionStateProvider, make)
