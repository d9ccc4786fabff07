/** MQTT over plain TCP (port 1883 by default). */
import type { Effect, Scope } from "effect"
import * as Net from "node:net"
import { type Admit, serverOptions } from "./Admission.ts"
import { type BoundAddress, type Handler, serveNet } from "./Listener.ts"
import type { ListenerError } from "./ListenerError.ts"

/** Listens on `host:port` until the scope closes; connections `admit` refuses are closed as they are accepted. */
export const listen = (
  options: { readonly host: string; readonly port: number },
  handler: Handler,
  admit?: Admit
): Effect.Effect<BoundAddress, ListenerError, Scope.Scope> =>
  serveNet(
    { transport: "tcp", host: options.host, port: options.port },
    () => Net.createServer(serverOptions(admit)),
    "connection",
    handler
  )
