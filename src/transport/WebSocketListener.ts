/** MQTT over WebSocket: binary frames carry the MQTT byte stream (subprotocol "mqtt"). */
import { NodeSocketServer } from "@effect/platform-node"
import { Effect, type Scope } from "effect"
import type { WebSocketListenerConfig } from "../config/BrokerConfig.ts"
import { type BoundAddress, type Handler, inFiber, serve } from "./Listener.ts"
import * as Wire from "./Wire.ts"
import type { ListenerError } from "./ListenerError.ts"

/** Listens for WebSocket upgrades until the scope closes. */
export const listen = (
  options: WebSocketListenerConfig,
  handler: Handler
): Effect.Effect<BoundAddress, ListenerError, Scope.Scope> => {
  const served = inFiber(handler)
  const host = options.host ?? "0.0.0.0"
  return serve(
    { transport: "ws", host, port: options.port },
    NodeSocketServer.makeWebSocket({
      host,
      port: options.port,
      // mqtt.js and browsers offer "mqtt" (3.1.1+) or "mqttv3.1"; answer with what was offered
      handleProtocols: (protocols: Set<string>) =>
        protocols.has("mqtt") ? "mqtt" : protocols.has("mqttv3.1") ? "mqttv3.1" : false
    }),
    // Effect's socket, read and written through the same `Wire` interface; closed with the handler's scope
    (socket) =>
      Effect.scoped(
        Effect.flatMap(Effect.serviceOption(NodeSocketServer.IncomingMessage), (upgrade) =>
          Effect.flatMap(Wire.fromSocket(socket, upgrade._tag === "Some" ? upgrade.value : undefined), served))
      ).pipe(Effect.catch((error) => Effect.logDebug("socket failed before it was read", error)))
  )
}
