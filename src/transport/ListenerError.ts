/**
 * Why a listener could not start, said so an operator can act on it: which listener (transport,
 * host, port) and a tagged `reason`, shaped like effect's `SocketServerError` so callers can
 * `Effect.catchReason("ListenerError", "AddressInUse", …)`.
 */
import { Predicate, Schema } from "effect"
import * as SocketServer from "effect/socket/SocketServer"

/** Another process (or another listener of this broker) already listens there. */
export class AddressInUse extends Schema.TaggedError<AddressInUse>()("AddressInUse", { cause: Schema.Defect() }) {
  override get message(): string {
    return "address already in use"
  }
}

/** The OS refused the bind: a port below 1024 without the privilege, for instance. */
export class PermissionDenied extends Schema.TaggedError<PermissionDenied>()("PermissionDenied", { cause: Schema.Defect() }) {
  override get message(): string {
    return "permission denied"
  }
}

/** The host is not an address of this machine. */
export class AddressNotAvailable extends Schema.TaggedError<AddressNotAvailable>()("AddressNotAvailable", { cause: Schema.Defect() }) {
  override get message(): string {
    return "address not available on this machine"
  }
}

/** The host name does not resolve. */
export class HostNotFound extends Schema.TaggedError<HostNotFound>()("HostNotFound", { cause: Schema.Defect() }) {
  override get message(): string {
    return "host not found"
  }
}

/** The TLS key and certificate cannot serve TLS (not PEM, or a key that does not match). */
export class InvalidTlsMaterial extends Schema.TaggedError<InvalidTlsMaterial>()("InvalidTlsMaterial", { problem: Schema.String }) {
  override get message(): string {
    return `TLS: ${this.problem}`
  }
}

/** Anything else the OS or Node reported; its own message is shown. */
export class ListenFailed extends Schema.TaggedError<ListenFailed>()("ListenFailed", { cause: Schema.Defect() }) {
  override get message(): string {
    return Predicate.isError(this.cause) ? this.cause.message : String(this.cause)
  }
}

/** The reasons a listener can fail to start. */
export const ListenerErrorReason = Schema.Union([AddressInUse, PermissionDenied, AddressNotAvailable, HostNotFound, InvalidTlsMaterial, ListenFailed])

/** The reasons a listener can fail to start. */
export type ListenerErrorReason = typeof ListenerErrorReason.Type

/** A listener could not start; `message` is the one line an operator reads. */
export class ListenerError extends Schema.TaggedError<ListenerError>()("ListenerError", {
  transport: Schema.Literals(["tcp", "tls", "ws", "http"]),
  host: Schema.String,
  port: Schema.Number,
  reason: ListenerErrorReason
}) {
  override get message(): string {
    return `cannot listen on ${this.transport}://${this.host}:${this.port}: ${this.reason.message}`
  }
}

/** The listener a `ListenerError` is about. */
export interface Endpoint {
  readonly transport: ListenerError["transport"]
  readonly host: string
  readonly port: number
}

/** The Node error under a `SocketServerError` (or the value itself when it is not one). */
const underlying = (cause: unknown): unknown => cause instanceof SocketServer.SocketServerError ? cause.reason.cause : cause

const errnoCode = (cause: unknown): unknown => Predicate.hasProperty(cause, "code") ? cause.code : undefined

/** Classifies what `listen` failed with (a `SocketServerError`, or what `net.Server.listen` threw). */
export const fromCause = (endpoint: Endpoint, failure: unknown): ListenerError => {
  const cause = underlying(failure)
  const reason = (() => {
    switch (errnoCode(cause)) {
      case "EADDRINUSE":
        return new AddressInUse({ cause })
      case "EACCES":
      case "EPERM":
        return new PermissionDenied({ cause })
      case "EADDRNOTAVAIL":
        return new AddressNotAvailable({ cause })
      case "ENOTFOUND":
      case "EAI_AGAIN":
        return new HostNotFound({ cause })
      default:
        return new ListenFailed({ cause })
    }
  })()
  return new ListenerError({ ...endpoint, reason })
}
