/**
 * The CONNACK code an mqtt.js client gets from a broker on `port` (0 when accepted), for tests
 * that only need to know whether and how a CONNECT was refused.
 */
import mqtt from "mqtt"

/** Connects once (no reconnects) with `options` and resolves with the CONNACK code. */
export const connackCode = (port: number, options: mqtt.IClientOptions): Promise<number> =>
  connackCodeAt(`mqtt://127.0.0.1:${port}`, options)

/** `connackCode` for any broker URL (`ws://…` included). */
export const connackCodeAt = (url: string, options: mqtt.IClientOptions): Promise<number> =>
  new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options })
    client.once("connect", () => {
      client.end(true)
      resolve(0)
    })
    client.once("error", (error) => {
      client.end(true)
      const code = (error as { code?: unknown }).code
      if (typeof code === "number") resolve(code)
      else reject(error)
    })
  })
