/**
 * Serving a `SocketServer` in the current scope: accepted sockets go to the handler until
 * the scope closes, which stops the listener and interrupts every connection.
 */
import { Effect, type Scope } from "effect"
import type * as NetAddress from "effect/net/NetAddress"
import type * as Socket from "effect/socket/Socket"
import type * as SocketServer from "effect/socket/SocketServer"
import { type Endpoint, fromCause, type ListenerError } from "./ListenerError.ts"

/** Where a listener ended up listening. */
export interface BoundAddress {
  readonly transport: "tcp" | "tls" | "ws" | "http"
  readonly host: string
  readonly port: number
}

const toBound = (transport: BoundAddress["transport"], address: NetAddress.SocketAddress): BoundAddress =>
  address._tag === "UnixPathAddress"
    ? { transport, host: address.path, port: 0 }
    : { transport, host: String(address.address), port: address.port }

/**
 * Starts serving `handler` on a server created in the current scope; returns its address.
 * Whatever stops the server from listening becomes a `ListenerError` naming `endpoint`: a
 * failure, and also what `net.Server.listen` throws (a bad port is a RangeError, not a failure).
 */
export const serve = Effect.fnUntraced(function*<E>(
  endpoint: Endpoint,
  server: Effect.Effect<SocketServer.SocketServer["Service"], E, Scope.Scope>,
  handler: (socket: Socket.Socket) => Effect.Effect<void>
): Effect.fn.Return<BoundAddress, ListenerError, Scope.Scope> {
  const listening = yield* server.pipe(
    Effect.catch((error) => Effect.fail(fromCause(endpoint, error))),
    Effect.catchDefect((defect) => Effect.fail(fromCause(endpoint, defect)))
  )
  yield* Effect.forkScoped(listening.run(handler))
  return toBound(endpoint.transport, listening.address)
})
