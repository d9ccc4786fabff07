/** MQTT over TLS (conventionally port 8883). */
import { NodeSocketServer } from "@effect/platform-node"
import type { Effect, Scope } from "effect"
import type * as Socket from "effect/socket/Socket"
import type * as SocketServer from "effect/socket/SocketServer"
import type { TlsListenerConfig } from "../config/BrokerConfig.ts"
import { type BoundAddress, serve } from "./Listener.ts"

/** Listens with TLS until the scope closes. */
export const listen = (
  options: TlsListenerConfig,
  handler: (socket: Socket.Socket) => Effect.Effect<void>
): Effect.Effect<BoundAddress, SocketServer.SocketServerError, Scope.Scope> =>
  serve(
    "tls",
    NodeSocketServer.makeTls({
      host: options.host ?? "0.0.0.0",
      port: options.port,
      key: typeof options.key === "string" ? options.key : Buffer.from(options.key),
      cert: typeof options.cert === "string" ? options.cert : Buffer.from(options.cert)
    }),
    handler
  )
