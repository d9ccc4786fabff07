/**
 * What a packet handler works with: the broker core, this connection's outbox and its
 * mutable connection-local state (never session state: that lives in the provider).
 */
import { Effect, Schema } from "effect"
import type { Outbox } from "./Outbox.ts"
import type { LiveConnection } from "./ConnectionRegistry.ts"
import type { Core } from "./Core.ts"

/**
 * A client broke the protocol (or the broker refuses what it asked): the connection is closed
 * and the reason logged; MQTT 5 clients first get DISCONNECT with `code` (0x82 Protocol Error
 * unless said otherwise). `disconnect: false` when the answer was already sent (a refusing CONNACK).
 */
export class ProtocolViolation extends Schema.TaggedError<ProtocolViolation>()("ProtocolViolation", {
  reason: Schema.String,
  code: Schema.optional(Schema.Number),
  disconnect: Schema.optional(Schema.Boolean),
  /** Logged at debug rather than warning: one of a flood whose first was logged (`--max-connect-rate`). */
  quiet: Schema.optional(Schema.Boolean)
}) {}

/** MQTT 5 reason codes the broker sends. */
export const ReasonCode = {
  Success: 0x00,
  DisconnectWithWill: 0x04,
  NoSubscriptionExisted: 0x11,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  QuotaExceeded: 0x97,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QosNotSupported: 0x9b,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f
} as const

/** Connection phases: before CONNECT, connected, or on its way out. */
export type Phase = "awaiting-connect" | "connected" | "closing"

/** One connection as its handlers see it. */
export interface ConnectionContext {
  readonly core: Core
  readonly outbox: Outbox
  /** Remote address, for log lines. */
  readonly remote: string
  /**
   * The client certificate as the TLS handshake verified it: `commonName` is its subject CN
   * (undefined when the client sent no verified certificate, or it has no CN). Undefined for a
   * connection not over TLS. CONNECT turns it into the user name under `useIdentityAsUsername`.
   */
  readonly certificate: { readonly commonName: string | undefined } | undefined
  phase: Phase
  clientId: string
  /** The user name the client authenticated as (from CONNECT, or as the Authenticator decides); undefined: anonymous. */
  username: string | undefined
  protocolVersion: number
  /** Keepalive in ms (0: none). */
  keepaliveMs: number
  /** Set when the client sent DISCONNECT: the will is discarded. */
  graceful: boolean
  /** This connection's entry in the registry once CONNECT succeeded. */
  live: LiveConnection | undefined
  /** Gives back the place `maxConnections` kept for this CONNECT while it is checked (idempotent). */
  releaseSeat: (() => void) | undefined
  /** MQTT 5: the client accepts reason strings and user properties on errors. */
  problemInformation: boolean
  /** MQTT 5: topic aliases the client set up towards the broker. */
  readonly inboundAliases: Map<number, string>
  /** MQTT 5: the session expiry asked for in CONNECT (a DISCONNECT may not raise it from 0). */
  connectExpiry: number
  /** MQTT 5: a new session expiry from DISCONNECT. */
  disconnectExpiry: number | undefined
  /** MQTT 5: the DISCONNECT reason code to send when the broker ends the connection. */
  closeCode: number | undefined
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
