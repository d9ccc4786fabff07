/**
 * The session operations the broker performs, each one pure transition applied through
 * `SessionStateProvider.modify`: written through by construction, never a read-then-write.
 * The property suite drives this same service over any provider.
 */
import { Context, Effect, Layer, Option } from "effect"
import type { Message } from "./Message.ts"
import type { ConnectRequest, SessionState, Subscription } from "./SessionState.ts"
import { SessionStateProvider, type SessionStoreError } from "./SessionStateProvider.ts"
import * as Transitions from "./Transitions.ts"

type Outgoing = Transitions.Outgoing
const noOutgoing: ReadonlyArray<Outgoing> = []

/** Session operations over the provider. */
export class Sessions extends Context.Service<Sessions, {
  readonly limits: Transitions.Limits
  /** CONNECT: create, replace (clean start) or resume the session. */
  readonly connect: (request: ConnectRequest) => Effect.Effect<Transitions.Connected, SessionStoreError>
  /** SUBSCRIBE: records granted subscriptions. */
  readonly subscribe: (
    clientId: string,
    granted: ReadonlyArray<readonly [string, Subscription]>
  ) => Effect.Effect<void, SessionStoreError>
  /** UNSUBSCRIBE: forgets filters. */
  readonly unsubscribe: (clientId: string, filters: ReadonlyArray<string>) => Effect.Effect<void, SessionStoreError>
  /** A routed message: what to send now (nothing when queued, dropped or there is no session). */
  readonly deliver: (
    clientId: string,
    message: Message,
    online: boolean
  ) => Effect.Effect<ReadonlyArray<Outgoing>, SessionStoreError>
  readonly puback: (clientId: string, packetId: number) => Effect.Effect<ReadonlyArray<Outgoing>, SessionStoreError>
  readonly pubrec: (clientId: string, packetId: number) => Effect.Effect<ReadonlyArray<Outgoing>, SessionStoreError>
  readonly pubcomp: (clientId: string, packetId: number) => Effect.Effect<ReadonlyArray<Outgoing>, SessionStoreError>
  /** An inbound QoS 2 PUBLISH: true when it is new and must be forwarded. */
  readonly receiveQos2: (clientId: string, packetId: number) => Effect.Effect<boolean, SessionStoreError>
  readonly pubrel: (clientId: string, packetId: number) => Effect.Effect<void, SessionStoreError>
  /** The connection ended: keeps or removes the session and returns the will to publish. */
  readonly disconnect: (
    clientId: string,
    graceful: boolean,
    now: number
  ) => Effect.Effect<Transitions.Ended, SessionStoreError>
  /** The stored session (diagnostics and tests). */
  readonly get: (clientId: string) => Effect.Effect<Option.Option<SessionState>, SessionStoreError>
}>()("effect-mqtt-broker/session/Sessions") {}

/** Builds the session operations for the given limits over the current provider. */
export const make = Effect.fnUntraced(function*(limits: Transitions.Limits) {
  const provider = yield* SessionStateProvider

  /** Applies a step to an existing session; without one there is nothing to do. */
  const step = <A>(clientId: string, empty: A, f: (state: SessionState) => readonly [A, SessionState]) =>
    provider.modify(clientId, (current) => {
      if (Option.isNone(current)) return [empty, current] as const
      const [result, next] = f(current.value)
      return [result, next === current.value ? current : Option.some(next)] as const
    })

  const outgoingOf = (f: (state: SessionState) => Transitions.Step) => (clientId: string) =>
    step(clientId, noOutgoing, (state) => {
      const { outgoing, state: next } = f(state)
      return [outgoing, next]
    })

  return Sessions.of({
    limits,
    connect: (request) =>
      provider.modify(request.clientId, (stored) => {
        const connected = Transitions.connect(Option.getOrUndefined(stored), request)
        return [connected, Option.some(connected.state)] as const
      }),
    subscribe: (clientId, granted) =>
      step(clientId, undefined, (state) => [undefined, Transitions.subscribe(state, granted)]),
    unsubscribe: (clientId, filters) =>
      step(clientId, undefined, (state) => [undefined, Transitions.unsubscribe(state, filters)]),
    deliver: (clientId, message, online) => outgoingOf((state) => Transitions.deliver(state, message, online, limits))(clientId),
    puback: (clientId, packetId) => outgoingOf((state) => Transitions.puback(state, packetId))(clientId),
    pubrec: (clientId, packetId) => outgoingOf((state) => Transitions.pubrec(state, packetId))(clientId),
    pubcomp: (clientId, packetId) => outgoingOf((state) => Transitions.pubcomp(state, packetId))(clientId),
    receiveQos2: (clientId, packetId) =>
      step(clientId, false, (state) => {
        const received = Transitions.receiveQos2(state, packetId)
        return [received.forward, received.state]
      }),
    pubrel: (clientId, packetId) => step(clientId, undefined, (state) => [undefined, Transitions.pubrel(state, packetId)]),
    disconnect: (clientId, graceful, now) =>
      provider.modify(clientId, (current) => {
        if (Option.isNone(current)) return [{ state: undefined, will: undefined }, current] as const
        const ended = Transitions.disconnect(current.value, graceful, now)
        return [ended, Option.fromUndefinedOr(ended.state)] as const
      }),
    get: provider.get
  })
})

/** The session operations as a Layer over whichever `SessionStateProvider` is provided. */
export const layer = (limits: Transitions.Limits): Layer.Layer<Sessions, never, SessionStateProvider> =>
  Layer.effect(Sessions, make(limits))
