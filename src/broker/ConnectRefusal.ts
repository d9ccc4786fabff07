/**
 * Why the broker refused a CONNECT, shaped like Effect's `SocketServerError`: one error,
 * `ConnectRefused`, whose `reason` is one of the refusals below. The CONNACK each refusal is
 * answered with (3.1.1 return code or MQTT 5 reason code) is decided in one place, `connackFor`;
 * the CONNECT steps only return refusals.
 */
import { Data } from "effect"
import { type AuthenticationRefused, connackCodes } from "../auth/Authenticator.ts"
import { ConnackCode, ReasonCode } from "../protocol/ReasonCode.ts"

/** Over `--max-connect-rate` from one address; `report` counts the refusals since the last logged one (undefined: not logged). */
export interface RateExceeded {
  readonly _tag: "RateExceeded"
  readonly address: string
  readonly limit: number
  readonly report: number | undefined
}

/** A protocol level the broker does not speak [MQTT-3.1.2-2]. */
export interface UnsupportedProtocolLevel {
  readonly _tag: "UnsupportedProtocolLevel"
  readonly level: number
}

/** MQTT 5 enhanced authentication, which the broker does not offer. */
export interface BadAuthenticationMethod {
  readonly _tag: "BadAuthenticationMethod"
  readonly method: string
}

/** A client id the broker does not accept (MQTT 3.1.1 §3.1.3.1, 3.1 §3.1, 5 §3.1.3.1). */
export interface ClientIdRejected {
  readonly _tag: "ClientIdRejected"
  readonly detail: string
}

/** `--max-connections` reached. */
export interface ServerFull {
  readonly _tag: "ServerFull"
  readonly limit: number
  readonly clientId: string
}

/** A will the broker will not publish later: its topic, size, QoS or retain flag. */
export interface WillRefused {
  readonly _tag: "WillRefused"
  readonly detail: string
  readonly code: ReasonCode
}

/** `useIdentityAsUsername`, but the client certificate names nobody. */
export interface NoCertificateName {
  readonly _tag: "NoCertificateName"
  readonly clientId: string
}

/** The `Authenticator` refused the client. */
export interface NotAuthenticated {
  readonly _tag: "NotAuthenticated"
  readonly refused: AuthenticationRefused
  readonly username: string | undefined
  readonly clientId: string
}

/** The `Authorizer` does not let the client publish its will's topic. */
export interface WillNotAuthorized {
  readonly _tag: "WillNotAuthorized"
  readonly topic: string
  readonly clientId: string
}

/** Every reason a CONNECT is refused for. */
export type ConnectRefusalReason =
  | RateExceeded
  | UnsupportedProtocolLevel
  | BadAuthenticationMethod
  | ClientIdRejected
  | ServerFull
  | WillRefused
  | NoCertificateName
  | NotAuthenticated
  | WillNotAuthorized

/** The CONNACK codes that answer a refusal: `v3` undefined means 3.1/3.1.1 have none (the connection is only closed). */
export interface RefusalCodes {
  readonly v3: ConnackCode | undefined
  readonly v5: ReasonCode
}

/** The codes for each refusal: the one table of the spec's answers to a refused CONNECT. */
export const codesFor = (reason: ConnectRefusalReason): RefusalCodes => {
  switch (reason._tag) {
    case "RateExceeded":
      // 3.1.1 has no code for it: closed without CONNACK
      return { v3: undefined, v5: ReasonCode.ConnectionRateExceeded }
    case "UnsupportedProtocolLevel":
      return { v3: ConnackCode.UnacceptableProtocolVersion, v5: ReasonCode.UnsupportedProtocolVersion }
    case "BadAuthenticationMethod":
      return { v3: ConnackCode.NotAuthorized, v5: ReasonCode.BadAuthenticationMethod }
    case "ClientIdRejected":
      return { v3: ConnackCode.IdentifierRejected, v5: ReasonCode.ClientIdentifierNotValid }
    case "ServerFull":
      return { v3: ConnackCode.ServerUnavailable, v5: ReasonCode.QuotaExceeded }
    case "WillRefused":
      // 3.1.1 has no return code for an invalid will topic: the packet is malformed, so close [MQTT-3.1.4-1]
      return { v3: reason.code === ReasonCode.TopicNameInvalid ? undefined : ConnackCode.ServerUnavailable, v5: reason.code }
    case "NoCertificateName":
    case "WillNotAuthorized":
      return { v3: ConnackCode.NotAuthorized, v5: ReasonCode.NotAuthorized }
    case "NotAuthenticated":
      return connackCodes(reason.refused.reason)
  }
}

/**
 * The CONNACK that answers `reason` from a client speaking `version`, as packet fields, or
 * undefined when the spec has none for it (the connection is then closed without an answer). A
 * protocol level the broker does not speak is answered in 3.1.1 framing, which every client reads.
 */
export const connackFor = (
  reason: ConnectRefusalReason,
  version: number
): { readonly protocolVersion: 4; readonly returnCode: ConnackCode } | {
  readonly protocolVersion: 5
  readonly reasonCode: ReasonCode
} | undefined => {
  const codes = codesFor(reason)
  if (version === 5 && reason._tag !== "UnsupportedProtocolLevel") return { protocolVersion: 5, reasonCode: codes.v5 }
  return codes.v3 === undefined ? undefined : { protocolVersion: 4, returnCode: codes.v3 }
}

/** What is logged for a refusal (the refused client id goes into it: the log line's clientId is not set yet). */
export const describeRefusal = (reason: ConnectRefusalReason): string => {
  switch (reason._tag) {
    case "RateExceeded":
      return reason.report === undefined
        ? `CONNECT from ${reason.address} refused: over --max-connect-rate ${reason.limit}`
        : `CONNECT from ${reason.address} refused: over --max-connect-rate ${reason.limit} (${reason.report} refused since the last such line; more are logged at debug for a second)`
    case "UnsupportedProtocolLevel":
      return `unsupported protocol level ${reason.level}`
    case "BadAuthenticationMethod":
      return `unsupported authentication method ${reason.method}`
    case "ClientIdRejected":
      return reason.detail
    case "ServerFull":
      return `connection refused: --max-connections ${reason.limit} reached (client id ${JSON.stringify(reason.clientId)})`
    case "WillRefused":
      return reason.detail
    case "NoCertificateName":
      return `no client certificate common name to use as the user name (client id ${JSON.stringify(reason.clientId)})`
    case "NotAuthenticated": {
      const who = reason.username === undefined ? "anonymous" : `user ${JSON.stringify(reason.username)}`
      return `${reason.refused.message} (${who}, client id ${JSON.stringify(reason.clientId)})`
    }
    case "WillNotAuthorized":
      return `will topic ${JSON.stringify(reason.topic)} not authorized (client id ${JSON.stringify(reason.clientId)})`
  }
}

/** Whether the refusal is logged at debug: one of a flood whose first was logged (`--max-connect-rate`). */
export const isQuiet = (reason: ConnectRefusalReason): boolean => reason._tag === "RateExceeded" && reason.report === undefined

/** A CONNECT was refused; `reason` says why (and so which CONNACK answered it). */
export class ConnectRefused extends Data.TaggedError("ConnectRefused")<{ readonly reason: ConnectRefusalReason }> {
  override get message(): string {
    return describeRefusal(this.reason)
  }
}
