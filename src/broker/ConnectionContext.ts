/**
 * What a packet handler works with: the broker core, this connection's outbox and its
 * mutable connection-local state (never session state: that lives in the provider).
 */
import { Effect, Schema } from "effect"
import type { Outbox } from "./Outbox.ts"
import type { LiveConnection } from "./ConnectionRegistry.ts"
import type { Core } from "./Core.ts"

/** A client broke the protocol; the connection is closed and the reason logged. */
export class ProtocolViolation extends Schema.TaggedError<ProtocolViolation>()("ProtocolViolation", {
  reason: Schema.String
}) {}

/** Connection phases: before CONNECT, connected, or on its way out. */
export type Phase = "awaiting-connect" | "connected" | "closing"

/** One connection as its handlers see it. */
export interface ConnectionContext {
  readonly core: Core
  readonly outbox: Outbox
  /** Remote address, for log lines. */
  readonly remote: string
  phase: Phase
  clientId: string
  protocolVersion: number
  /** Keepalive in ms (0: none). */
  keepaliveMs: number
  /** Set when the client sent DISCONNECT: the will is discarded. */
  graceful: boolean
  /** This connection's entry in the registry once CONNECT succeeded. */
  live: LiveConnection | undefined
}

/**
 * Runs a session change under this client's lock, but only while this connection still owns
 * the client id: after a takeover, a late packet of the old connection must not touch (or send
 * the results of) the session the new connection now owns.
 */
export const whileOwner = <A, E, R>(
  context: ConnectionContext,
  effect: (live: LiveConnection) => Effect.Effect<A, E, R>
): Effect.Effect<A | undefined, E, R> =>
  context.core.locks.withLock(
    context.clientId,
    Effect.suspend(() => {
      const live = context.live
      return live !== undefined && context.core.registry.get(context.clientId) === live
        ? effect(live)
        : Effect.succeed(undefined)
    })
  )
