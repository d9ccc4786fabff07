/**
 * The session operations the broker performs, each one pure transition applied through
 * `SessionStateProvider.modify`: written through by construction, never a read-then-write.
 * The property suite drives this same service over any provider.
 */
import { Clock, Context, Effect, Layer, Option } from "effect"
import type { Message } from "./Message.ts"
import { GroupCommit } from "./providers/GroupCommit.ts"
import type { ConnectRequest, SessionState, Subscription } from "./SessionState.ts"
import { SessionStateProvider, type SessionStoreError } from "./SessionStateProvider.ts"
import * as Transitions from "./Transitions.ts"

type Outgoing = Transitions.Outgoing
const noOutgoing: ReadonlyArray<Outgoing> = []

/**
 * The per-message transitions applied synchronously: no Effect is built, nothing is awaited, so
 * the caller's synchronous section stays one (see `KeyedLock.isFree`). Each returns what to send
 * now (nothing when there is no session). Offered over a provider with `modifySync` that does not
 * commit in groups, i.e. the memory provider; the time is the `Clock` the Sessions were made with.
 */
export interface SyncSessions {
  /** As `Sessions.deliver`. */
  readonly deliver: (clientId: string, message: Message, online: boolean) => ReadonlyArray<Outgoing>
  /** As `Sessions.puback`. */
  readonly puback: (clientId: string, packetId: number) => ReadonlyArray<Outgoing>
  /** As `Sessions.pubrec`. */
  readonly pubrec: (clientId: string, packetId: number) => ReadonlyArray<Outgoing>
  /** As `Sessions.pubcomp`. */
  readonly pubcomp: (clientId: string, packetId: number) => ReadonlyArray<Outgoing>
}

/** A transition applied to the stored session, if any: what to send, and the session to store. */
const outgoingUpdate = (
  current: Option.Option<SessionState>,
  f: (state: SessionState) => Transitions.Step
): readonly [ReadonlyArray<Outgoing>, Option.Option<SessionState>] => {
  if (Option.isNone(current)) return [noOutgoing, current]
  const { outgoing, state } = f(current.value)
  return [outgoing, state === current.value ? current : Option.some(state)]
}

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
  /** UNSUBSCRIBE: forgets filters; says for each whether the session had it. */
  readonly unsubscribe: (
    clientId: string,
    filters: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<boolean>, SessionStoreError>
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
  /** The connection ended: keeps or removes the session and returns the will to publish now. */
  readonly disconnect: (
    clientId: string,
    options: boolean | Transitions.DisconnectOptions,
    now: number
  ) => Effect.Effect<Transitions.Ended, SessionStoreError>
  /** Time passed for an offline session: delayed will due, or the session expired. */
  readonly expire: (clientId: string, now: number) => Effect.Effect<Transitions.Ended, SessionStoreError>
  /**
   * Runs `f` once every change made so far is durable, after every `f` given before it: `deliver`
   * (QoS 0/1), `puback` and `pubcomp` may return before theirs is (with a `GroupCommit` provider),
   * so the PUBACK / PUBREC of the PUBLISH that caused them is sent through this. At once over a
   * provider that stores each change before returning.
   */
  readonly whenDurable: (f: () => void) => void
  /**
   * The per-message transitions without an Effect, when the provider allows it (memory); undefined
   * otherwise, and then only the Effect operations above apply.
   */
  readonly sync: SyncSessions | undefined
  /** The stored session (diagnostics and tests). */
  readonly get: (clientId: string) => Effect.Effect<Option.Option<SessionState>, SessionStoreError>
}>()("effect-mqtt-broker/session/Sessions") {}

/** Builds the session operations for the given limits over the current provider. */
export const make = Effect.fnUntraced(function*(limits: Transitions.Limits) {
  const provider = yield* SessionStateProvider
  const groupCommit = Option.getOrUndefined(yield* Effect.serviceOption(GroupCommit))
  const clock = yield* Clock.Clock
  /** For changes nothing acknowledges by itself: not waiting for their commit (see `durable`). */
  const modifyDeferred = groupCommit?.modifyDeferred ?? provider.modify

  /** Applies a step to an existing session; without one there is nothing to do. */
  const step = <A>(
    clientId: string,
    empty: A,
    f: (state: SessionState) => readonly [A, SessionState],
    modify: typeof provider.modify = provider.modify
  ) =>
    modify(clientId, (current) => {
      if (Option.isNone(current)) return [empty, current] as const
      const [result, next] = f(current.value)
      return [result, next === current.value ? current : Option.some(next)] as const
    })

  /** Applies a transition that needs the time (message expiry) and returns what to send. */
  const outgoingOf = (
    clientId: string,
    f: (state: SessionState, now: number) => Transitions.Step,
    modify: typeof provider.modify = provider.modify
  ) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => modify(clientId, (current) => outgoingUpdate(current, (state) => f(state, now))))

  const modifySync = groupCommit === undefined ? provider.modifySync : undefined
  const sync: SyncSessions | undefined = modifySync === undefined ? undefined : {
    deliver: (clientId, message, online) => {
      // a delivery reads the time only for the message's own expiry: no clock read per subscriber otherwise
      const now = message.expiresAt === undefined ? 0 : clock.currentTimeMillisUnsafe()
      return modifySync(clientId, (current) =>
        outgoingUpdate(current, (state) => Transitions.deliver(state, message, online, limits, now)))
    },
    puback: (clientId, packetId) => {
      const now = clock.currentTimeMillisUnsafe()
      return modifySync(clientId, (current) => outgoingUpdate(current, (state) => Transitions.puback(state, packetId, now)))
    },
    pubrec: (clientId, packetId) =>
      modifySync(clientId, (current) => outgoingUpdate(current, (state) => Transitions.pubrec(state, packetId))),
    pubcomp: (clientId, packetId) => {
      const now = clock.currentTimeMillisUnsafe()
      return modifySync(clientId, (current) => outgoingUpdate(current, (state) => Transitions.pubcomp(state, packetId, now)))
    }
  }

  /** Applies an end-of-connection or end-of-time transition that may remove the session. */
  const end = (clientId: string, f: (state: SessionState) => Transitions.Ended) =>
    provider.modify(clientId, (current) => {
      if (Option.isNone(current)) return [{ state: undefined, will: undefined }, current] as const
      const ended = f(current.value)
      return [ended, ended.state === current.value ? current : Option.fromUndefinedOr(ended.state)] as const
    })

  return Sessions.of({
    limits,
    connect: (request) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        provider.modify(request.clientId, (stored) => {
          const connected = Transitions.connect(Option.getOrUndefined(stored), request, now)
          return [connected, Option.some(connected.state)] as const
        })),
    subscribe: (clientId, granted) =>
      step(clientId, undefined, (state) => [undefined, Transitions.subscribe(state, granted)]),
    unsubscribe: (clientId, filters) =>
      step(
        clientId,
        filters.map(() => false),
        (state) => [filters.map((filter) => state.subscriptions.has(filter)), Transitions.unsubscribe(state, filters)]
      ),
    // a QoS 2 delivery is stored before it is sent: exactly once must hold across a crash too
    deliver: (clientId, message, online) =>
      outgoingOf(
        clientId,
        (state, now) => Transitions.deliver(state, message, online, limits, now),
        message.qos === 2 ? provider.modify : modifyDeferred
      ),
    // a release lost in a crash only means a resend with DUP
    puback: (clientId, packetId) => outgoingOf(clientId, (state, now) => Transitions.puback(state, packetId, now), modifyDeferred),
    pubrec: (clientId, packetId) => outgoingOf(clientId, (state) => Transitions.pubrec(state, packetId)),
    pubcomp: (clientId, packetId) =>
      outgoingOf(clientId, (state, now) => Transitions.pubcomp(state, packetId, now), modifyDeferred),
    receiveQos2: (clientId, packetId) =>
      step(clientId, false, (state) => {
        const received = Transitions.receiveQos2(state, packetId)
        return [received.forward, received.state]
      }),
    pubrel: (clientId, packetId) => step(clientId, undefined, (state) => [undefined, Transitions.pubrel(state, packetId)]),
    disconnect: (clientId, options, now) => end(clientId, (state) => Transitions.disconnect(state, options, now)),
    expire: (clientId, now) => end(clientId, (state) => Transitions.expire(state, now)),
    whenDurable: groupCommit?.afterCommit ?? ((f) => f()),
    sync,
    get: provider.get
  })
})

/** The session operations as a Layer over whichever `SessionStateProvider` is provided. */
export const layer = (limits: Transitions.Limits): Layer.Layer<Sessions, never, SessionStateProvider> =>
  Layer.effect(Sessions, make(limits))
