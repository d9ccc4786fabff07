/**
 * Everything a broker can be told, with the defaults in one place. Defaults follow what
 * a Mosquitto user expects unless noted (README "Options" documents each one).
 */

/** A TLS listener: PEM key and certificate, and optionally client certificates (Mosquitto's names). */
export interface TlsListenerConfig {
  readonly port: number
  readonly host?: string | undefined
  readonly key: string | Uint8Array
  readonly cert: string | Uint8Array
  /** PEM CA bundle that client certificates must chain to (Mosquitto's `cafile`). */
  readonly ca?: string | Uint8Array | undefined
  /**
   * Clients without a certificate that chains to `ca` are refused during the TLS handshake
   * (Mosquitto's `require_certificate`); without it no client certificate is asked for.
   */
  readonly requireCertificate?: boolean | undefined
  /**
   * The client certificate's subject CN is the MQTT user name; the CONNECT's user name and
   * password are ignored (Mosquitto's `use_identity_as_username`). Only with `requireCertificate`.
   */
  readonly useIdentityAsUsername?: boolean | undefined
}

/** A WebSocket listener (MQTT over binary WebSocket frames, subprotocol "mqtt"). */
export interface WebSocketListenerConfig {
  readonly port: number
  readonly host?: string | undefined
}

/** A plain TCP listener. */
export interface TcpListenerConfig {
  readonly port: number
  readonly host: string
}

/** One listener of any transport, as `BrokerConfig.listeners` lists them. */
export type ListenerConfig =
  | ({ readonly transport: "tcp" } & TcpListenerConfig)
  | ({ readonly transport: "tls" } & TlsListenerConfig)
  | ({ readonly transport: "ws" } & WebSocketListenerConfig)

/** Broker configuration. */
export interface BrokerConfig {
  /** TCP listener address. */
  readonly host: string
  /** TCP listener port; 0 picks a free one (see `Broker.address`). */
  readonly port: number
  readonly tls: TlsListenerConfig | undefined
  readonly webSocket: WebSocketListenerConfig | undefined
  /**
   * Every listener, in order, when set (a config file's `listeners`: several of one transport);
   * `host`/`port`, `tls` and `webSocket` are then not listened on by themselves. `tls` still
   * carries the client-certificate settings, which apply to every TLS listener.
   */
  readonly listeners?: ReadonlyArray<ListenerConfig> | undefined
  /** A connection that has not sent CONNECT by then is closed. */
  readonly connectTimeoutMs: number
  /**
   * Connected clients at most; 0: no limit (Mosquitto's max_connections -1). A CONNECT past it gets
   * CONNACK 3 server unavailable (MQTT 5: 0x97 quota exceeded) and is closed; taking over a
   * connected client id is never refused. Counted at CONNECT, so CONNECTs being accepted at the
   * same moment may pass it by a few.
   */
  readonly maxConnections: number
  /**
   * CONNECTs per second from one source address (a token bucket: one second's worth may come at
   * once); 0: no limit. Past it MQTT 5 gets CONNACK 0x9F connection rate exceeded, 3.1.1 is closed
   * without CONNACK (it has no code for it); logged once a second per address. Off by default: every
   * client behind one NAT or gateway shares an address, and a fleet reconnecting after a restart
   * would be refused; Mosquitto has no such limit. Set it where one address is one device.
   */
  readonly maxConnectsPerSecond: number
  /**
   * Failed authentications per second from one source address (a token bucket one second deep);
   * while an address is over it, its new connections are closed as soon as they are accepted,
   * before any CONNECT is read or password checked, so a password-guessing flood costs the
   * broker almost nothing and connected clients do not wait for it. 0: no limit. Clients sharing
   * the address (behind one NAT) are refused too while it lasts.
   */
  readonly maxAuthFailuresPerSecond: number
  /**
   * Largest inbound packet (whole packet, bytes); larger is refused from its header and closes the
   * connection. 32 MiB by default: Mosquitto and Aedes accept up to the protocol's 256 MB, EMQX
   * stops at 1 MB; 32 MiB carries any payload an ordinary device sends (16 MB firmware images
   * included) while one connection can pin at most that much.
   */
  readonly maxPacketSize: number
  /**
   * Bytes of partly received packets held across all connections at once. A packet that does not
   * fit waits (its sender's socket is not read) until others complete, so many large uploads
   * cost their senders time, not the broker its memory. Never below `maxPacketSize`.
   */
  readonly maxReceivingBytes: number
  /**
   * Largest PUBLISH payload (bytes) accepted; 0: only `maxPacketSize` applies (Mosquitto's
   * message_size_limit). A larger one is not routed: its QoS flow is completed so the client does
   * not retry; MQTT 5 gets PUBACK / PUBREC 0x97 quota exceeded (Mosquitto's 0x95 is not a valid
   * PUBACK code and mqtt.js refuses it).
   */
  readonly maxPayloadSize: number
  /**
   * Subscriptions one session may hold; 0: no limit. A SUBSCRIBE filter past it is refused alone
   * (SUBACK 0x80, MQTT 5 0x97 quota exceeded); re-subscribing a held filter does not count again.
   */
  readonly maxSubscriptionsPerClient: number
  /**
   * Longest topic name or filter in UTF-8 bytes; the default is the protocol's own limit. A PUBLISH
   * past it closes the connection (MQTT 5: DISCONNECT 0x90), a SUBSCRIBE filter past it is refused
   * alone (SUBACK 0x80, MQTT 5 0x8F).
   */
  readonly maxTopicLength: number
  /**
   * Most `/`-separated levels in a topic name or filter, 0 for no limit; past it as `maxTopicLength`.
   * 128 as EMQX's max_topic_levels (Mosquitto refuses more than 200 levels, fixed): deep topics
   * cost the subscription index and every match, and no ordinary application nears 128.
   */
  readonly maxTopicLevels: number
  /** Per-session queue bound (offline, or window full); when full the oldest message is dropped. */
  readonly maxQueuedMessages: number
  /** Queue QoS 0 messages for offline persistent sessions (off by default, as in Mosquitto). */
  readonly queueQos0: boolean
  /** Outbound QoS 1/2 messages in flight per client (Mosquitto's max_inflight_messages default is 20). */
  readonly maxInflightMessages: number
  /**
   * Hard cap on the bytes waiting to be written to one client: a QoS 0 message that would take
   * a congested client's outbox past it is dropped (counted and logged). QoS 1/2 are bounded by
   * the in-flight window and the session queue instead.
   */
  readonly maxOutboxBytes: number
  /**
   * Bytes waiting to be written to one client above which a QoS 0 delivery to it makes the
   * publisher wait (its socket is not read) until the outbox drains to half this; capped by
   * `maxOutboxBytes`. Backpressure instead of loss for a subscriber that keeps reading.
   */
  readonly outboxHighWaterBytes: number
  /**
   * A congested client whose socket completed no write for this long is a stalled consumer:
   * publishers stop waiting for it and QoS 0 to it beyond `maxOutboxBytes` is dropped.
   */
  readonly slowConsumerMs: number
  /** A stalled consumer making no progress for this long is disconnected (MQTT 5: 0x97); 0: never. */
  readonly slowConsumerDisconnectMs: number
  /** Longest client id accepted (bytes of UTF-16 code units; 3.1 "MQIsdp" clients are limited to 23 by the spec). */
  readonly maxClientIdLength: number
  /** Session Expiry Interval (seconds) given to 3.1.1 clean=0 sessions; default: never expire. */
  readonly persistentSessionExpiry: number
  /** Largest keepalive (seconds) a client may use; 0: no limit. MQTT 5 clients are told via Server Keep Alive. */
  readonly maxKeepalive: number
  /** Inbound QoS 2 messages a client may have awaiting PUBREL (MQTT 5 Receive Maximum); more gets DISCONNECT 0x93. */
  readonly receiveMaximum: number
  /** Highest QoS the broker accepts and grants (MQTT 5 Maximum QoS). */
  readonly maximumQos: 0 | 1 | 2
  /** Whether retained messages are supported (MQTT 5 Retain Available). */
  readonly retainAvailable: boolean
  /** Topic aliases a client may use towards the broker (MQTT 5 Topic Alias Maximum; Mosquitto's default is 10). */
  readonly topicAliasMaximum: number
  /** Topic aliases the broker uses towards an MQTT 5 client, at most (and at most what the client allows). */
  readonly outboundTopicAliases: number
  /** Seconds between `$SYS/broker/...` updates (Mosquitto's sys_interval); 0: no `$SYS` tree. */
  readonly sysInterval: number
  /**
   * Give back the memory V8 grew for a burst (clients connecting, churn, floods) with one full GC
   * once the broker is quiet again (`memory/TrimPolicy.ts`, README "Memory"); false: leave it to V8.
   */
  readonly memoryTrim: boolean
  /** The HTTP endpoint serving `/metrics`, `/health` and `/ready` (port 0: any free port); undefined: off. */
  readonly metrics: { readonly port: number; readonly host: string } | undefined
  /** OTLP/HTTP metrics export to a collector's base URL every `exportIntervalMs`; undefined: off. */
  readonly otlp: { readonly endpoint: string; readonly exportIntervalMs: number } | undefined
  /**
   * Route to the other brokers on this Redis server (`url`), each saying it is alive every
   * `heartbeatMs` (README "Cluster"); undefined: this broker on its own.
   */
  readonly cluster: { readonly url: string; readonly heartbeatMs: number } | undefined
}

/** The defaults. */
export const defaults: BrokerConfig = {
  host: "0.0.0.0",
  port: 1883,
  tls: undefined,
  webSocket: undefined,
  connectTimeoutMs: 10_000,
  maxConnections: 0,
  maxConnectsPerSecond: 0,
  maxAuthFailuresPerSecond: 10,
  maxPacketSize: 32 * 1024 * 1024,
  maxReceivingBytes: 256 * 1024 * 1024,
  maxPayloadSize: 0,
  maxSubscriptionsPerClient: 0,
  maxTopicLength: 65_535,
  maxTopicLevels: 128,
  maxQueuedMessages: 1000,
  queueQos0: false,
  maxInflightMessages: 20,
  maxOutboxBytes: 8 * 1024 * 1024,
  outboxHighWaterBytes: 1024 * 1024,
  slowConsumerMs: 2_000,
  slowConsumerDisconnectMs: 30_000,
  maxClientIdLength: 65_535,
  persistentSessionExpiry: 0xffffffff,
  maxKeepalive: 0,
  receiveMaximum: 65_535,
  maximumQos: 2,
  retainAvailable: true,
  topicAliasMaximum: 10,
  outboundTopicAliases: 10,
  sysInterval: 10,
  memoryTrim: true,
  metrics: undefined,
  otlp: undefined,
  cluster: undefined
}

/** The listeners the broker starts: `listeners` if set, else TCP, then TLS and WebSocket when configured. */
export const listenersOf = (config: BrokerConfig): ReadonlyArray<ListenerConfig> =>
  config.listeners ?? [
    { transport: "tcp", host: config.host, port: config.port },
    ...(config.tls === undefined ? [] : [{ transport: "tls" as const, ...config.tls }]),
    ...(config.webSocket === undefined ? [] : [{ transport: "ws" as const, ...config.webSocket }])
  ]

const clamp = (value: number, min: number, max: number): number => Math.min(max, Math.max(min, value))

/**
 * Defaults overridden by what is given; windows are clamped to what 16-bit packet ids allow. The
 * entrypoint refuses out-of-range values before they get here (`Settings.ts`); the clamps keep a
 * `Broker.layer(config)` built in code safe, and let a default follow another key (a smaller
 * `maxOutboxBytes` lowers the default high-water mark).
 */
export const make = (overrides: Partial<BrokerConfig> = {}): BrokerConfig => {
  const config = { ...defaults, ...overrides }
  return {
    ...config,
    maxInflightMessages: clamp(config.maxInflightMessages, 1, 65_535),
    maxReceivingBytes: Math.max(config.maxReceivingBytes, config.maxPacketSize),
    receiveMaximum: clamp(config.receiveMaximum, 1, 65_535),
    outboxHighWaterBytes: clamp(config.outboxHighWaterBytes, 1, config.maxOutboxBytes),
    slowConsumerMs: Math.max(1, config.slowConsumerMs),
    slowConsumerDisconnectMs: config.slowConsumerDisconnectMs <= 0 ? 0 : Math.max(config.slowConsumerDisconnectMs, config.slowConsumerMs),
    topicAliasMaximum: clamp(config.topicAliasMaximum, 0, 65_535),
    outboundTopicAliases: clamp(config.outboundTopicAliases, 0, 65_535),
    sysInterval: Math.max(0, config.sysInterval)
  }
}
