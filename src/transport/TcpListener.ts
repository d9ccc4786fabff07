/** MQTT over plain TCP (port 1883 by default). */
import { NodeSocketServer } from "@effect/platform-node"
import type { Effect, Scope } from "effect"
import type * as Socket from "effect/socket/Socket"
import { type Admit, serverOptions } from "./Admission.ts"
import { type BoundAddress, serve } from "./Listener.ts"
import type { ListenerError } from "./ListenerError.ts"

/** Listens on `host:port` until the scope closes; connections `admit` refuses are closed as they are accepted. */
export const listen = (
  options: { readonly host: string; readonly port: number },
  handler: (socket: Socket.Socket) => Effect.Effect<void>,
  admit?: Admit
): Effect.Effect<BoundAddress, ListenerError, Scope.Scope> =>
  serve(
    { transport: "tcp", host: options.host, port: options.port },
    NodeSocketServer.make({ host: options.host, port: options.port, ...serverOptions(admit) }),
    handler
  )
