/**
 * Who may connect: the `Authenticator` service, asked once per CONNECT (in
 * `broker/handlers/connect.ts`, after the client id is checked and before any session is
 * touched). Its answer is a `Principal` or an `AuthenticationRefused` whose reason becomes the
 * refusing CONNACK. The default, `allowAll`, accepts everyone as the user name they sent, like
 * mochi-mqtt's `AllowHook`: with nothing configured the broker behaves as it did without one.
 *
 * The broker calls it inside the connecting client's own fiber, so a slow implementation (a
 * password hash, a remote lookup) delays only that client.
 */
import { Context, Effect, Layer, Schema } from "effect"

/** What the broker knows about a client when it asks. */
export interface AuthenticationRequest {
  /** The client id, after validation (an assigned one when the client sent none). */
  readonly clientId: string
  /**
   * The CONNECT user name; undefined when the client sent none. Under `useIdentityAsUsername`
   * (TLS listener), the verified client certificate's CN instead, whatever the CONNECT said.
   */
  readonly username: string | undefined
  /** The CONNECT password bytes; undefined when the client sent none, or its certificate names it. */
  readonly password: Uint8Array | undefined
  /**
   * True when `username` is the CN of a client certificate the TLS handshake verified
   * (`useIdentityAsUsername`): the certificate is the credential, so a password check has
   * nothing to check (Mosquitto skips its password file for such clients too).
   */
  readonly certified?: boolean | undefined
  /** The remote address (`host:port`, or `websocket`), for logs and address-based policies. */
  readonly remote: string
  /** MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5. */
  readonly protocolVersion: number
}

/** Who a connection is, once accepted. */
export interface Principal {
  /** The user name the connection acts as (ACLs match on it); undefined: anonymous. */
  readonly username: string | undefined
}

/** Wrong user name or password: CONNACK 4 in 3.1/3.1.1, 0x86 in MQTT 5. */
export class BadCredentials extends Schema.TaggedError<BadCredentials>()("BadCredentials", {}) {
  override get message(): string {
    return "bad user name or password"
  }
}

/** The client may not connect at all (e.g. anonymous when that is not allowed): CONNACK 5 / 0x87. */
export class NotAuthorized extends Schema.TaggedError<NotAuthorized>()("NotAuthorized", {}) {
  override get message(): string {
    return "not authorized"
  }
}

/** Why a connection was refused. */
export const AuthenticationRefusedReason = Schema.Union([BadCredentials, NotAuthorized])

/** Why a connection was refused. */
export type AuthenticationRefusedReason = typeof AuthenticationRefusedReason.Type

/** An authenticator refused a CONNECT; `reason` decides the CONNACK code. */
export class AuthenticationRefused extends Schema.TaggedError<AuthenticationRefused>()("AuthenticationRefused", {
  reason: AuthenticationRefusedReason
}) {
  override get message(): string {
    return `authentication refused: ${this.reason.message}`
  }
}

/** The CONNACK codes of a refusal: 3.1/3.1.1 return code and MQTT 5 reason code. */
export const connackCodes = (reason: AuthenticationRefusedReason): { readonly v3: 4 | 5; readonly v5: 0x86 | 0x87 } =>
  reason._tag === "BadCredentials" ? { v3: 4, v5: 0x86 } : { v3: 5, v5: 0x87 }

/** Decides who may connect. */
export class Authenticator extends Context.Service<Authenticator, {
  /**
   * Accepts a CONNECT as a `Principal` or refuses it. Runs in the connecting client's fiber;
   * it must not fail otherwise (an unexpected failure is a defect and closes that connection).
   */
  readonly authenticate: (request: AuthenticationRequest) => Effect.Effect<Principal, AuthenticationRefused>
}>()("effect-mqtt-broker/auth/Authenticator") {}

/** An authenticator from its `authenticate` function. */
export const make = (
  authenticate: (request: AuthenticationRequest) => Effect.Effect<Principal, AuthenticationRefused>
): Authenticator["Service"] => Authenticator.of({ authenticate })

/** Accepts every client as the user name it sent: the broker's behaviour when nothing is configured. */
export const allowAll: Authenticator["Service"] = make((request) => Effect.succeed({ username: request.username }))

/** `allowAll` as a Layer. */
export const layerAllowAll: Layer.Layer<Authenticator> = Layer.succeed(Authenticator, allowAll)
