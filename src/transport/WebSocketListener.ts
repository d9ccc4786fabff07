/** MQTT over WebSocket: binary frames carry the MQTT byte stream (subprotocol "mqtt"). */
import { NodeSocketServer } from "@effect/platform-node"
import type { Effect, Scope } from "effect"
import type * as Socket from "effect/socket/Socket"
import type { WebSocketListenerConfig } from "../config/BrokerConfig.ts"
import { type BoundAddress, serve } from "./Listener.ts"
import type { ListenerError } from "./ListenerError.ts"

/** Listens for WebSocket upgrades until the scope closes. */
export const listen = (
  options: WebSocketListenerConfig,
  handler: (socket: Socket.Socket) => Effect.Effect<void>
): Effect.Effect<BoundAddress, ListenerError, Scope.Scope> => {
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
    handler
  )
}
