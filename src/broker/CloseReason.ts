/**
 * Why a connection ends: one value, decided once, that the teardown reads for everything that
 * depends on it — the DISCONNECT a live MQTT 5 client is sent, whether the will is published,
 * and the line that is logged.
 */
import { Cause, Exit, Predicate } from "effect"
import { DecodeError, describe, reasonCodeOf } from "../protocol/DecodeError.ts"
import { ReasonCode } from "../protocol/ReasonCode.ts"
import type { SessionStoreError } from "../session/SessionStateProvider.ts"
import { ConnectRefused, describeRefusal, isQuiet } from "./ConnectRefusal.ts"
import { ProtocolViolation } from "./ProtocolViolation.ts"

/** Why a connection ends. */
export type CloseReason =
  /** The client sent DISCONNECT; with reason 0x04 it still wants its will published. */
  | { readonly _tag: "ClientDisconnect"; readonly withWill: boolean; readonly expiryInterval: number | undefined }
  /** The client broke the protocol (or sent bytes that do not decode). */
  | { readonly _tag: "Violation"; readonly violation: ProtocolViolation }
  /** Its CONNECT was refused (a CONNACK, if the spec has one, already said so). */
  | { readonly _tag: "Refused"; readonly refused: ConnectRefused }
  /** A new connection with the same client id took the session over. */
  | { readonly _tag: "TakenOver" }
  /** No packet within 1.5 × the keepalive. */
  | { readonly _tag: "KeepaliveExpired" }
  /** No CONNECT within the connect timeout. */
  | { readonly _tag: "ConnectTimeout" }
  /** The broker is stopping. */
  | { readonly _tag: "BrokerShutdown" }
  /** The socket failed or the peer closed it. */
  | { readonly _tag: "IoError"; readonly cause: unknown }
  /** A bug of ours in a handler: it ends this connection only. */
  | { readonly _tag: "InternalError"; readonly cause: Cause.Cause<unknown> }
  /** The session store failed. */
  | { readonly _tag: "StoreFailed"; readonly error: SessionStoreError }

/** The reasons that carry nothing, made once. */
export const TakenOver: CloseReason = { _tag: "TakenOver" }
/** See `CloseReason`. */
export const KeepaliveExpired: CloseReason = { _tag: "KeepaliveExpired" }
/** See `CloseReason`. */
export const ConnectTimeout: CloseReason = { _tag: "ConnectTimeout" }
/** See `CloseReason`. */
export const BrokerShutdown: CloseReason = { _tag: "BrokerShutdown" }

/** The client's DISCONNECT (MQTT 5 reason code and new session expiry, when it sent them). */
export const clientDisconnect = (reasonCode: number | undefined, expiryInterval: number | undefined): CloseReason => ({
  _tag: "ClientDisconnect",
  withWill: reasonCode === ReasonCode.DisconnectWithWill,
  expiryInterval
})

/** What can end the reader with a failure. */
export type ReaderError = ProtocolViolation | DecodeError | ConnectRefused | SessionStoreError | { readonly _tag: "SocketError" }

/** The reason a failure of the reader stands for. */
export const ofFailure = (error: ReaderError): CloseReason => {
  if (error instanceof ProtocolViolation) return { _tag: "Violation", violation: error }
  if (error instanceof DecodeError) {
    return { _tag: "Violation", violation: new ProtocolViolation({ reason: describe(error.reason), code: reasonCodeOf(error.reason) }) }
  }
  if (error instanceof ConnectRefused) return { _tag: "Refused", refused: error }
  if (Predicate.isTagged(error, "SocketError")) return { _tag: "IoError", cause: error }
  return { _tag: "StoreFailed", error: error as SessionStoreError }
}

/**
 * The reason the reader's exit stands for: the reason it returned, its failure, a defect, or
 * (interrupted from outside, with no reason of its own) the broker stopping.
 */
export const ofExit = (exit: Exit.Exit<CloseReason, ReaderError>): CloseReason => {
  if (Exit.isSuccess(exit)) return exit.value
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  if (failure !== undefined) return ofFailure(failure.error)
  if (Cause.hasInterruptsOnly(exit.cause)) return BrokerShutdown
  return { _tag: "InternalError", cause: exit.cause }
}

/** The DISCONNECT reason code a live MQTT 5 client is sent, or undefined for none. */
export const disconnectCode = (reason: CloseReason): ReasonCode | undefined => {
  switch (reason._tag) {
    case "Violation":
      return reason.violation.reasonCode
    case "TakenOver":
      return ReasonCode.SessionTakenOver
    case "KeepaliveExpired":
    case "ConnectTimeout":
      return ReasonCode.KeepAliveTimeout
    case "BrokerShutdown":
      return ReasonCode.ServerShuttingDown
    case "InternalError":
    case "StoreFailed":
      return ReasonCode.ImplementationSpecificError
    case "ClientDisconnect": // the client left: nothing to tell it
    case "Refused": // the CONNACK said it
    case "IoError": // nobody to tell
      return undefined
  }
}

/** The reason string sent with the DISCONNECT (when the client accepts problem information). */
export const reasonString = (reason: CloseReason): string | undefined =>
  reason._tag === "Violation" ? reason.violation.reason : undefined

/** Whether the client ended the connection itself, so its will is discarded. */
export const isGraceful = (reason: CloseReason): boolean => reason._tag === "ClientDisconnect" && !reason.withWill

/** The reason code logged with the end of the connection. */
export const logCode = (reason: CloseReason): ReasonCode =>
  reason._tag === "Refused" ? ReasonCode.Success : disconnectCode(reason) ?? ReasonCode.Success

/** The line logged when the connection closes for `reason`, if any (the end of a session has its own line). */
export const closeLine = (
  reason: CloseReason
): { readonly level: "Debug" | "Warn" | "Error"; readonly message: string; readonly cause?: unknown } | undefined => {
  switch (reason._tag) {
    case "Violation":
      return { level: "Warn", message: `closing connection: ${reason.violation.reason}` }
    case "Refused":
      return { level: isQuiet(reason.refused.reason) ? "Debug" : "Warn", message: `closing connection: ${describeRefusal(reason.refused.reason)}` }
    case "KeepaliveExpired":
      return { level: "Warn", message: "closing connection: keepalive expired" }
    case "ConnectTimeout":
      return { level: "Warn", message: "closing connection: no CONNECT within the connect timeout" }
    case "IoError":
      return { level: "Debug", message: "socket closed" }
    case "InternalError":
      return { level: "Error", message: "connection ended by an internal error", cause: reason.cause }
    case "StoreFailed":
      return { level: "Error", message: "session store failed; closing connection", cause: reason.error }
    case "ClientDisconnect":
    case "TakenOver":
    case "BrokerShutdown":
      return undefined
  }
}
