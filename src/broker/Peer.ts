/**
 * Who is on the other end of an accepted socket: its address (for log lines and the per-address
 * limits), the client certificate the TLS handshake verified, and whether the address is shut
 * out for guessing passwords (`Core.admit`; TCP and TLS listeners ask it already as Node accepts
 * the connection, so here it catches WebSocket peers and connections accepted before the shut-out).
 */
import * as Tls from "node:tls"
import type { Wire } from "../transport/Wire.ts"
import type { Core } from "./Core.ts"

/** The peer of one connection. */
export interface Peer {
  /** Remote address and port ("websocket" when the upgrade request did not say). */
  readonly remote: string
  /**
   * The client certificate as the TLS handshake verified it: `commonName` is its subject CN
   * (undefined when the client sent no verified certificate, or it has no CN). Undefined for a
   * connection not over TLS.
   */
  readonly certificate: { readonly commonName: string | undefined } | undefined
}

/**
 * The subject CN of the client certificate the handshake verified; undefined when there is none.
 * An unverified certificate (the listener did not require one) names nobody.
 */
const commonNameOf = (socket: Tls.TLSSocket): string | undefined => {
  if (!socket.authorized) return undefined
  const cn: unknown = socket.getPeerCertificate().subject?.CN
  // a subject with several CNs comes back as an array: the first one names the client
  const first = Array.isArray(cn) ? cn[0] : cn
  return typeof first === "string" && first !== "" ? first : undefined
}

/**
 * The peer of the connection being served (a TCP or TLS socket, or a WebSocket's upgrade request),
 * with Nagle turned off; undefined when it is gone already or shut out, in which case its
 * socket has been destroyed before it cost anything more.
 */
export const identify = (core: Core, wire: Wire): Peer | undefined => {
  // the TCP peer: the socket itself, or for a WebSocket its upgrade request's (a reverse proxy's, behind one)
  const socket = wire.tcp
  let remote = "websocket"
  let certificate: Peer["certificate"] = undefined
  if (socket !== undefined) {
    // gone before it was served (no address any more), or from an address guessing passwords
    if (socket.remoteAddress === undefined || core.admit?.(socket.remoteAddress) === false) {
      socket.destroy()
      return undefined
    }
    remote = `${socket.remoteAddress}:${socket.remotePort}`
  }
  if (socket !== undefined && wire.direct) {
    socket.setNoDelay(true)
    // the TLS listener hands over the socket once its handshake has completed
    if (socket instanceof Tls.TLSSocket) certificate = { commonName: commonNameOf(socket) }
  }
  return { remote, certificate }
}
