/**
 * The service behind which all session state lives. The broker never keeps a copy of a
 * session: every transition goes through `modify`, so the provider always holds the truth.
 */
import { Context, type Effect, type Option, Schema } from "effect"
import type { SessionState } from "./SessionState.ts"

/** A provider could not read or write session state. */
export class SessionStoreError extends Schema.TaggedError<SessionStoreError>()("SessionStoreError", {
  operation: Schema.String,
  clientId: Schema.String,
  cause: Schema.Defect()
}) {}

/**
 * An update applied atomically to one client's session: given the stored session (if any),
 * return a result and the session to store (`Option.none()` removes it). Must be pure: a
 * provider may run it under a lock or retry it.
 */
export type SessionUpdate<A> = (current: Option.Option<SessionState>) => readonly [A, Option.Option<SessionState>]

/** Storage for session state, keyed by client id. */
export class SessionStateProvider extends Context.Service<SessionStateProvider, {
  /** The stored session of a client. */
  readonly get: (clientId: string) => Effect.Effect<Option.Option<SessionState>, SessionStoreError>
  /** Stores (replaces) a session under its client id. */
  readonly store: (state: SessionState) => Effect.Effect<void, SessionStoreError>
  /** Removes a client's session; removing an absent one is not an error. */
  readonly remove: (clientId: string) => Effect.Effect<void, SessionStoreError>
  /** Atomic read-modify-write of one client's session: no other update to it interleaves. */
  readonly modify: <A>(clientId: string, update: SessionUpdate<A>) => Effect.Effect<A, SessionStoreError>
  /**
   * Optional: the same atomic update as `modify`, applied synchronously, for a provider that keeps
   * sessions in this process and cannot fail (the memory provider). `Sessions` then runs the
   * per-message transitions (a delivery, a PUBACK) without building an Effect for each. A wrapper
   * that changes what `modify` does must not pass this member on.
   */
  readonly modifySync?: (<A>(clientId: string, update: SessionUpdate<A>) => A) | undefined
  /** The client ids with a stored session (for restoring the router and for diagnostics). */
  readonly clientIds: Effect.Effect<ReadonlyArray<string>, SessionStoreError>
}>()("effect-mqtt-broker/session/SessionStateProvider") {}
