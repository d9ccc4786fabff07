/**
 * Serving a listener in the current scope: accepted connections go to the handler as a `Wire`
 * until the scope closes, which stops the listener and every connection. TCP and TLS listen on a
 * `net.Server` of their own (`serveNet`), handing each accepted socket to its handler and nothing
 * more: no fiber waits for an idle connection (issue 16: memory per idle connection), the
 * listener only keeps the set of connections it must stop. WebSocket goes through Effect's
 * `SocketServer` (`serve`), one fiber per socket as that server runs them.
 */
import { Context, Effect, Scope } from "effect"
import type * as NetAddress from "effect/net/NetAddress"
import type * as Socket from "effect/socket/Socket"
import type * as SocketServer from "effect/socket/SocketServer"
import type * as Net from "node:net"
import { type Endpoint, fromCause, type ListenerError } from "./ListenerError.ts"
import * as Wire from "./Wire.ts"

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

/** A connection being served, as its listener sees it. */
export interface Served {
  /** Ends the connection because its listener stops, and waits until it has ended. */
  readonly stop: Effect.Effect<void>
}

/** The connections a listener serves: a connection adds itself when it starts and deletes itself once it has ended. */
export interface Tracker {
  add(served: Served): void
  delete(served: Served): void
}

/**
 * What serves one connection: starts serving `wire` (running its Effects with `services`) and
 * returns at once; the connection is in `tracker` from then until it has ended.
 */
export type Handler = (wire: Wire.Wire, services: Context.Context<never>, tracker: Tracker) => void

/** Stops every connection of `tracker` that is still served, and waits until they have all ended. */
const stopAll = (served: Set<Served>): Effect.Effect<void> =>
  Effect.forEach(Array.from(served), (connection) => connection.stop, { concurrency: "unbounded", discard: true })

/**
 * A handler for a socket of Effect's `SocketServer`: the fiber the server runs for the socket
 * lasts as long as the connection; interrupting it (the server stopping) stops the connection.
 */
export const inFiber = (handler: Handler) => (wire: Wire.Wire): Effect.Effect<void> =>
  Effect.flatMap(Effect.context<never>(), (services) =>
    Effect.callback<void>((resume) => {
      let connection: Served | undefined
      handler(wire, services, {
        add: (served) => {
          connection = served
        },
        delete: () => resume(Effect.void)
      })
      return Effect.suspend(() => connection?.stop ?? Effect.void)
    }))

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

const boundOf = (transport: BoundAddress["transport"], address: string | Net.AddressInfo | null): BoundAddress =>
  address === null || typeof address === "string"
    ? { transport, host: address ?? "", port: 0 }
    : { transport, host: address.address, port: address.port }

/**
 * Listens on the `net.Server` that `create` makes (TCP, or TLS with `event` "secureConnection")
 * until the scope closes; each accepted socket is handed to `handler` with the services of the
 * caller, and the scope's end stops every connection still served. A socket that fails or closes
 * before it is served is only destroyed.
 */
export const serveNet = (
  endpoint: Endpoint,
  create: () => Net.Server,
  event: "connection" | "secureConnection",
  handler: Handler
): Effect.Effect<BoundAddress, ListenerError, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const services = Context.omit(Scope.Scope)(yield* Effect.context<never>())
    const server = yield* Effect.try({ try: create, catch: (cause) => fromCause(endpoint, cause) })
    // finalizers run last first: the connections are stopped before the server stops listening
    yield* Scope.addFinalizer(
      scope,
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
      })
    )
    const connections = new Set<Served>()
    yield* Scope.addFinalizer(scope, Effect.suspend(() => stopAll(connections)))
    server.on(event, (socket: Net.Socket) => {
      // nothing is read before its wire exists
      socket.pause()
      if (socket.destroyed) return
      handler(Wire.fromNetSocket(socket), services, connections)
    })
    yield* Effect.callback<void, ListenerError>((resume) => {
      const failed = (error: Error) => resume(Effect.fail(fromCause(endpoint, error)))
      server.once("error", failed)
      try {
        server.listen({ host: endpoint.host, port: endpoint.port }, () => {
          server.off("error", failed)
          resume(Effect.void)
        })
      } catch (cause) {
        server.off("error", failed)
        resume(Effect.fail(fromCause(endpoint, cause)))
      }
    })
    // an error after listening (EMFILE on accept, for one) must not end the process
    server.on("error", () => {})
    return boundOf(endpoint.transport, server.address())
  })
