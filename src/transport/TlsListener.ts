/** MQTT over TLS (conventionally port 8883). */
import { Effect, type Scope } from "effect"
import * as Crypto from "node:crypto"
import * as Tls from "node:tls"
import type { TlsListenerConfig } from "../config/BrokerConfig.ts"
import { type Admit, serverOptions } from "./Admission.ts"
import { type BoundAddress, type Handler, serveNet } from "./Listener.ts"
import { InvalidTlsMaterial, ListenerError } from "./ListenerError.ts"

const toBuffer = (pem: string | Uint8Array): string | Buffer => (typeof pem === "string" ? pem : Buffer.from(pem))

/**
 * Why a key and certificate cannot serve TLS (the key is not a PEM private key, the certificate
 * not a PEM certificate, or the key does not match it), or undefined when they can. Checked
 * before anything listens: Node's TLS server throws on such material only once it is being
 * created, after cleanup was registered. Each part is tried on its own first so the answer names
 * the file at fault instead of an OpenSSL decoder code.
 */
export const tlsMaterialProblem = (key: string | Uint8Array, cert: string | Uint8Array): string | undefined => {
  try {
    Crypto.createPrivateKey(toBuffer(key))
  } catch {
    return "the key is not a PEM private key"
  }
  try {
    new Crypto.X509Certificate(toBuffer(cert))
  } catch {
    return "the certificate is not a PEM certificate"
  }
  try {
    Tls.createSecureContext({ key: toBuffer(key), cert: toBuffer(cert) })
    return undefined
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause)
    return /key values mismatch/i.test(message) ? "the key does not match the certificate" : message
  }
}

/**
 * Why a CA bundle cannot verify client certificates (it is not PEM), or undefined when it can.
 * Checked before anything listens, for the same reason as `tlsMaterialProblem`.
 */
export const caProblem = (ca: string | Uint8Array): string | undefined => {
  try {
    new Crypto.X509Certificate(toBuffer(ca))
    return undefined
  } catch {
    return "the CA file is not a PEM certificate"
  }
}

/**
 * Listens with TLS until the scope closes; connections `admit` refuses are closed as they are
 * accepted, before their handshake.
 */
export const listen = (
  options: TlsListenerConfig,
  handler: Handler,
  admit?: Admit
): Effect.Effect<BoundAddress, ListenerError, Scope.Scope> =>
  Effect.suspend(() => {
    const endpoint = { transport: "tls", host: options.host ?? "0.0.0.0", port: options.port } as const
    const problem = tlsMaterialProblem(options.key, options.cert) ?? (options.ca === undefined ? undefined : caProblem(options.ca))
    if (problem !== undefined) {
      return Effect.fail(new ListenerError({ ...endpoint, reason: new InvalidTlsMaterial({ problem }) }))
    }
    const tlsOptions: Tls.TlsOptions = {
      key: toBuffer(options.key),
      cert: toBuffer(options.cert),
      // TLS 1.0/1.1 are deprecated (RFC 8996): clients speaking only those are refused
      minVersion: "TLSv1.2",
      ...(options.ca === undefined ? {} : { ca: toBuffer(options.ca) }),
      // as Mosquitto: a certificate is asked for only when it is required, and then a missing
      // or unverifiable one ends the handshake before any MQTT byte is read
      requestCert: options.requireCertificate === true,
      rejectUnauthorized: options.requireCertificate === true,
      ...serverOptions(admit)
    }
    return serveNet(endpoint, () => {
      const server = Tls.createServer(tlsOptions)
      // a failed handshake (no or a bad client certificate, not TLS at all) only closes that socket
      server.on("tlsClientError", (_error, socket) => socket.destroy())
      return server
    }, "secureConnection", handler)
  })
