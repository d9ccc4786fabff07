/**
 * What a connected client may do with topics: the `Authorizer` service, asked where mochi-mqtt
 * asks its ACL hook — for each filter inside the SUBSCRIBE loop (`handlers/subscribe.ts`),
 * for each PUBLISH beside the router's accept check (`handlers/publish.ts`), and for each
 * message before it goes to a client (`Delivery.ts`, and retained messages on SUBSCRIBE).
 *
 * With no `Authorizer` provided the broker allows everything, as before, and does not call
 * anything per message: `Broker.make` keeps `undefined` on `Core` for "allow all", and each call
 * site skips the check. `allowAll` is for an app that wants to name the default explicitly.
 */
import { Context, Effect, Layer } from "effect"
import { ReasonCode } from "../protocol/ReasonCode.ts"
import type { Action } from "./AclFile.ts"

export type { Action } from "./AclFile.ts"

/** One authorization question: may this client do `action` on `topic`? */
export interface AuthorizationRequest {
  /** The user name the client authenticated as (`ConnectionContext.username`); undefined: anonymous. */
  readonly username: string | undefined
  readonly clientId: string
  /** `publish` a PUBLISH, `subscribe` a filter of SUBSCRIBE, `receive` a message delivered to it. */
  readonly action: Action
  /** A topic name for `publish` and `receive`; a topic filter (possibly `$share/…`) for `subscribe`. */
  readonly topic: string
}

/** The MQTT 5 reason code of a denial (Not authorized), in PUBACK, PUBREC and SUBACK. */
export const NotAuthorized = ReasonCode.NotAuthorized

/** Decides which topics a client may publish to, subscribe to and receive from. */
export class Authorizer extends Context.Service<Authorizer, {
  /**
   * Whether the request is allowed. Called on the message path (once per PUBLISH and per
   * delivery), so it should answer from memory; it cannot fail — an implementation that can
   * must decide itself whether an error means allow or deny.
   */
  readonly authorize: (request: AuthorizationRequest) => Effect.Effect<boolean>
}>()("effect-mqtt-broker/auth/Authorizer") {}

/** An authorizer from its `authorize` function. */
export const make = (authorize: (request: AuthorizationRequest) => Effect.Effect<boolean>): Authorizer["Service"] =>
  Authorizer.of({ authorize })

/** Allows everything: the broker's behaviour when nothing is configured (mochi-mqtt's `AllowHook`). */
export const allowAll: Authorizer["Service"] = make(() => Effect.succeed(true))

/** `allowAll` as a Layer. */
export const layerAllowAll: Layer.Layer<Authorizer> = Layer.succeed(Authorizer, allowAll)
