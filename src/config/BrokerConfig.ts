/**
 * Everything a broker can be told, with the defaults in one place. Defaults follow what
 * a Mosquitto user expects unless noted (README "Options" documents each one).
 */

/** A TLS listener: PEM key and certificate. */
export interface TlsListenerConfig {
  readonly port: number
  readonly host?: string | undefined
  readonly key: string | Uint8Array
  readonly cert: string | Uint8Array
}

/** A WebSocket listener (MQTT over binary WebSocket frames, subprotocol "mqtt"). */
export interface WebSocketListenerConfig {
  readonly port: number
  readonly host?: string | undefined
}

/** Broker configuration. */
export interface BrokerConfig {
  /** TCP listener address. */
  readonly host: string
  /** TCP listener port; 0 picks a free one (see `Broker.address`). */
  readonly port: number
  readonly tls: TlsListenerConfig | undefined
  readonly webSocket: WebSocketListenerConfig | undefined
  /** A connection that has not sent CONNECT by then is closed. */
  readonly connectTimeoutMs: number
  /** Largest inbound packet (whole packet, bytes); larger closes the connection. Protocol maximum by default, like Mosquitto. */
  readonly maxPacketSize: number
  /** Per-session queue bound (offline, or window full); when full the oldest message is dropped. */
  readonly maxQueuedMessages: number
  /** Queue QoS 0 messages for offline persistent sessions (off by default, as in Mosquitto). */
  readonly queueQos0: boolean
  /** Outbound QoS 1/2 messages in flight per client (Mosquitto's max_inflight_messages default is 20). */
  readonly maxInflightMessages: number
  /** Bytes waiting to be written to one client above which QoS 0 messages to it are dropped (slow consumers). */
  readonly maxOutboxBytes: number
  /** Longest client id accepted (bytes of UTF-16 code units; 3.1 "MQIsdp" clients are limited to 23 by the spec). */
  readonly maxClientIdLength: number
}

/** The defaults. */
export const defaults: BrokerConfig = {
  host: "0.0.0.0",
  port: 1883,
  tls: undefined,
  webSocket: undefined,
  connectTimeoutMs: 10_000,
  maxPacketSize: 268_435_455,
  maxQueuedMessages: 1000,
  queueQos0: false,
  maxInflightMessages: 20,
  maxOutboxBytes: 8 * 1024 * 1024,
  maxClientIdLength: 65_535
}

/** Defaults overridden by what is given. */
export const make = (overrides: Partial<BrokerConfig> = {}): BrokerConfig => ({ ...defaults, ...overrides })
