/**
 * What a packet handler works with: the broker core and this connection's state, split by
 * concern — the writer (`outbox`), the session binding (who the client is, once CONNECT is
 * accepted) and the protocol options agreed at CONNECT. Session state itself lives in the
 * provider; the connection's phase lives in `Connection.ts` (`ConnectionPhase`).
 */
import { Effect } from "effect"
import type { LiveConnection } from "./ConnectionRegistry.ts"
import type { Core } from "./Core.ts"
import type { Outbox } from "./Outbox.ts"

/** Who the client is, for the session and the registry: set by CONNECT. */
export interface SessionBinding {
  clientId: string
  /** The user name the client authenticated as (from CONNECT, or as the Authenticator decides); undefined: anonymous. */
  username: string | undefined
  /** This connection's entry in the registry once CONNECT succeeded. */
  live: LiveConnection | undefined
  /** MQTT 5: the session expiry asked for in CONNECT (a DISCONNECT may not raise it from 0). */
  connectExpiry: number
  /** Gives back the place `maxConnections` kept for this CONNECT while it is checked (idempotent). */
  releaseSeat: (() => void) | undefined
}

/** What CONNECT settled about the protocol spoken on this connection. */
export interface ProtocolOptions {
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5; 4 until CONNECT says otherwise. */
  version: number
  /** Keepalive in ms (0: none). */
  keepaliveMs: number
  /** MQTT 5: topic aliases the client set up towards the broker (made on the first one). */
  inboundAliases: Map<number, string> | undefined
}

/** One connection as its handlers see it. */
export interface ConnectionContext {
  readonly core: Core
  /** The writer: everything sent to the client goes through it. */
  readonly outbox: Outbox
  /** Remote address, for log lines. */
  readonly remote: string
  /**
   * The client certificate as the TLS handshake verified it: `commonName` is its subject CN
   * (undefined when the client sent no verified certificate, or it has no CN). Undefined for a
   * connection not over TLS. CONNECT turns it into the user name under `useIdentityAsUsername`.
   */
  readonly certificate: { readonly commonName: string | undefined } | undefined
  readonly session: SessionBinding
  readonly protocol: ProtocolOptions
}

/** A context for a connection just accepted: no session yet, MQTT 3.1.1 until CONNECT says otherwise. */
export const make = (
  core: Core,
  outbox: Outbox,
  remote: string,
  certificate: ConnectionContext["certificate"]
): ConnectionContext => ({
  core,
  outbox,
  remote,
  certificate,
  session: { clientId: "", username: undefined, live: undefined, connectExpiry: 0, releaseSeat: undefined },
  protocol: { version: 4, keepaliveMs: 0, inboundAliases: undefined }
})

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
    context.session.clientId,
    Effect.suspend(() => {
      const live = context.session.live
      return live !== undefined && context.core.registry.get(context.session.clientId) === live
        ? effect(live)
        : Effect.succeed(undefined)
    })
  )
