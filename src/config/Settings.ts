/**
 * Every key the broker can be configured with, in one table: its flag, its environment
 * variable, its default, what values it allows (an effect `Schema`) and what it means. Values
 * are looked up in `Source`s, highest precedence first (flag > env > config file, `ConfigFile.ts`),
 * each decoded through its key's schema, so a value given as text (a flag, an env variable) and
 * one given as a number (a file) pass the same checks.
 *
 * Nothing here reads files or opens sockets: `decode` is pure, so a bad value is refused before
 * anything starts (`Load.ts` reads the TLS files afterwards).
 */
import { Result, Schema, SchemaTransformation } from "effect"
import { defaults } from "./BrokerConfig.ts"
import { ConfigError } from "./ConfigError.ts"

/** What a key may hold: the schema its values decode through and the phrase shown when one is refused. */
export interface Kind<A> {
  readonly schema: Schema.Decoder<A>
  /** Completes "… is not": `a port (0-65535)`. */
  readonly allowed: string
  /** The placeholder `--help` shows after the flag. */
  readonly metavar: string
}

/** Decimal integers only: `Number()` would also take "", " 12 ", "0x10" and "1e3". */
const IntegerText = Schema.String.check(Schema.isPattern(/^[+-]?\d+$/)).pipe(
  Schema.decodeTo(Schema.Number, SchemaTransformation.numberFromString)
)

const integer = (minimum: number, maximum: number, what: string, metavar: string): Kind<number> => ({
  schema: Schema.Union([Schema.Number, IntegerText]).pipe(
    Schema.decodeTo(Schema.Int.check(Schema.isBetween({ minimum, maximum })))
  ),
  allowed: maximum === Number.MAX_SAFE_INTEGER ? `${what} (${minimum} or more)` : `${what} (${minimum}-${maximum})`,
  metavar
})

const BooleanText = Schema.String.check(Schema.isPattern(/^(true|false|yes|no|on|off|1|0)$/i)).pipe(
  Schema.decodeTo(
    Schema.Boolean,
    SchemaTransformation.transform({
      decode: (text: string) => /^(true|yes|on|1)$/i.test(text),
      encode: (value: boolean) => String(value)
    })
  )
)

const boolean: Kind<boolean> = {
  schema: Schema.Union([Schema.Boolean, BooleanText]),
  allowed: "a boolean (true/false, yes/no, on/off, 1/0)",
  metavar: ""
}

const text = (what: string, metavar: string): Kind<string> => ({
  schema: Schema.String.check(Schema.isNonEmpty()),
  allowed: what,
  metavar
})

/** One of a fixed set of words. */
const choice = <const L extends ReadonlyArray<string>>(values: L, metavar: string): Kind<L[number]> => ({
  schema: Schema.Literals(values),
  allowed: `one of ${values.join(", ")}`,
  metavar
})

/** The formats `--log-format` takes (`entry/LogFormat.ts`); `auto` picks by whether stdout is a terminal. */
export const LOG_FORMATS = ["auto", "logfmt", "json", "pretty"] as const

/** A value of `--log-format`. */
export type LogFormat = (typeof LOG_FORMATS)[number]

/** Largest delay `setTimeout` honours (ms); longer ones fire at once. */
const MAX_TIMER_MS = 2_147_483_647
/** MQTT's largest Remaining Length (four 7-bit bytes): the protocol's own bound on a packet limit. */
const MAX_PACKET_SIZE = 268_435_455

const port = integer(0, 65_535, "a port", "PORT")
const httpUrl: Kind<string> = {
  schema: Schema.String.check(Schema.isPattern(/^https?:\/\/[^\s/]+\S*$/)),
  allowed: "an http:// or https:// URL",
  metavar: "URL"
}
const redisUrl: Kind<string> = {
  schema: Schema.String.check(Schema.isPattern(/^rediss?:\/\/\S+$/)),
  allowed: "a redis:// or rediss:// URL",
  metavar: "URL"
}
const bytes = (minimum: number) => integer(minimum, Number.MAX_SAFE_INTEGER, "a number of bytes", "BYTES")
const millis = (minimum: number) => integer(minimum, MAX_TIMER_MS, "a number of milliseconds", "MS")
const sixteenBit = (minimum: number, what: string) => integer(minimum, 65_535, what, "N")

/** One configuration key; `D` is its default's type (`undefined` for a key that is off unless set). */
export interface Setting<A, D extends A | undefined = A | undefined> {
  /** Flag name without the dashes. */
  readonly flag: string
  readonly env: string
  readonly kind: Kind<A>
  /** Used when no source gives a value; `undefined`: off (an optional listener). */
  readonly default: D
  readonly description: string
}

const setting = <A, D extends A | undefined>(
  flag: string,
  env: string,
  kind: Kind<A>,
  fallback: D,
  description: string
): Setting<A, D> => ({ flag, env, kind, default: fallback, description })

/** The table: every key, its flag, env variable, default, allowed values and meaning (README "Options"). */
export const settings = {
  logFormat: setting("log-format", "MQTT_LOG_FORMAT", choice(LOG_FORMATS, "FORMAT"), "auto" as LogFormat, "log lines as logfmt, json (one object a line) or pretty; auto: logfmt on a terminal, json otherwise"),
  host: setting("host", "MQTT_HOST", text("a host name or address", "HOST"), defaults.host, "listener address (TCP, TLS and WebSocket)"),
  port: setting("port", "MQTT_PORT", port, defaults.port, "TCP listener port (0: any free port)"),
  tlsPort: setting("tls-port", "MQTT_TLS_PORT", port, undefined, "TLS listener port; needs --tls-key and --tls-cert"),
  tlsKey: setting("tls-key", "MQTT_TLS_KEY", text("a file name", "FILE"), undefined, "PEM private key file for TLS"),
  tlsCert: setting("tls-cert", "MQTT_TLS_CERT", text("a file name", "FILE"), undefined, "PEM certificate file for TLS"),
  tlsCa: setting("tls-ca", "MQTT_TLS_CA", text("a file name", "FILE"), undefined, "PEM CA bundle that TLS client certificates must chain to"),
  requireCertificate: setting("require-certificate", "MQTT_REQUIRE_CERTIFICATE", boolean, false, "refuse TLS clients without a certificate from --tls-ca during the handshake"),
  useIdentityAsUsername: setting("use-identity-as-username", "MQTT_USE_IDENTITY_AS_USERNAME", boolean, false, "the TLS client certificate's CN is the user name; CONNECT's user name and password are ignored (needs --require-certificate)"),
  wsPort: setting("ws-port", "MQTT_WS_PORT", port, undefined, "WebSocket listener port"),
  connectTimeoutMs: setting("connect-timeout-ms", "MQTT_CONNECT_TIMEOUT_MS", millis(1), defaults.connectTimeoutMs, "close connections that send no CONNECT within this time"),
  maxConnections: setting("max-connections", "MQTT_MAX_CONNECTIONS", integer(0, Number.MAX_SAFE_INTEGER, "a number of connections", "N"), defaults.maxConnections, "connected clients at most, more refused with CONNACK 3 / 0x97 (0: no limit)"),
  maxConnectsPerSecond: setting("max-connect-rate", "MQTT_MAX_CONNECT_RATE", integer(0, Number.MAX_SAFE_INTEGER, "a number of CONNECTs per second", "N"), defaults.maxConnectsPerSecond, "CONNECTs per second from one address, more refused (MQTT 5: CONNACK 0x9F, 3.1.1: closed) (0: no limit)"),
  maxAuthFailuresPerSecond: setting("max-auth-failure-rate", "MQTT_MAX_AUTH_FAILURE_RATE", integer(0, Number.MAX_SAFE_INTEGER, "a number of failed authentications per second", "N"), defaults.maxAuthFailuresPerSecond, "failed authentications per second from one address; over it, new connections from there are closed unread (0: no limit)"),
  maxPacketSize: setting("max-packet-size", "MQTT_MAX_PACKET_SIZE", integer(1, MAX_PACKET_SIZE, "a packet size in bytes", "BYTES"), defaults.maxPacketSize, "largest inbound packet in bytes"),
  maxReceivingBytes: setting("max-receiving-bytes", "MQTT_MAX_RECEIVING_BYTES", bytes(1), defaults.maxReceivingBytes, "bytes of partly received packets held across all connections, at least --max-packet-size; more waits"),
  maxPayloadSize: setting("max-payload-size", "MQTT_MAX_PAYLOAD_SIZE", integer(0, MAX_PACKET_SIZE, "a payload size in bytes", "BYTES"), defaults.maxPayloadSize, "largest PUBLISH payload in bytes, larger is dropped (MQTT 5: PUBACK/PUBREC 0x97); 0: only --max-packet-size"),
  maxSubscriptionsPerClient: setting("max-subscriptions-per-client", "MQTT_MAX_SUBSCRIPTIONS_PER_CLIENT", integer(0, Number.MAX_SAFE_INTEGER, "a number of subscriptions", "N"), defaults.maxSubscriptionsPerClient, "subscriptions one session may hold, more refused in SUBACK (0: no limit)"),
  maxTopicLength: setting("max-topic-length", "MQTT_MAX_TOPIC_LENGTH", integer(1, 65_535, "a topic length in bytes", "BYTES"), defaults.maxTopicLength, "longest topic name or filter in bytes; a PUBLISH past it is a protocol error, a filter is refused in SUBACK"),
  maxTopicLevels: setting("max-topic-levels", "MQTT_MAX_TOPIC_LEVELS", integer(0, 65_535, "a number of topic levels", "N"), defaults.maxTopicLevels, "most levels in a topic name or filter, as --max-topic-length (0: no limit)"),
  maxQueuedMessages: setting("max-queued-messages", "MQTT_MAX_QUEUED_MESSAGES", integer(0, Number.MAX_SAFE_INTEGER, "a number of messages", "N"), defaults.maxQueuedMessages, "per-session queue bound, oldest dropped (0: queue nothing)"),
  maxInflightMessages: setting("max-inflight-messages", "MQTT_MAX_INFLIGHT_MESSAGES", sixteenBit(1, "a number of messages"), defaults.maxInflightMessages, "outbound QoS 1/2 window per client"),
  maxOutboxBytes: setting("max-outbox-bytes", "MQTT_MAX_OUTBOX_BYTES", bytes(1), defaults.maxOutboxBytes, "hard cap on bytes waiting to be written to one client; QoS 0 past it is dropped"),
  outboxHighWaterBytes: setting("outbox-high-water-bytes", "MQTT_OUTBOX_HIGH_WATER_BYTES", bytes(1), defaults.outboxHighWaterBytes, "bytes waiting for one client above which its publishers wait (until half of it); at most --max-outbox-bytes"),
  slowConsumerMs: setting("slow-consumer-ms", "MQTT_SLOW_CONSUMER_MS", millis(1), defaults.slowConsumerMs, "a congested client with no write completed for this long is stalled: publishers stop waiting for it"),
  slowConsumerDisconnectMs: setting("slow-consumer-disconnect-ms", "MQTT_SLOW_CONSUMER_DISCONNECT_MS", millis(0), defaults.slowConsumerDisconnectMs, "disconnect a stalled client after this long without progress (0: never), at least --slow-consumer-ms"),
  persistentSessionExpiry: setting("persistent-session-expiry", "MQTT_PERSISTENT_SESSION_EXPIRY", integer(0, 0xffff_ffff, "a number of seconds", "SECONDS"), defaults.persistentSessionExpiry, "seconds a 3.1.1 clean=0 session outlives its connection (4294967295: never)"),
  maxKeepalive: setting("max-keepalive", "MQTT_MAX_KEEPALIVE", integer(0, 65_535, "a number of seconds", "SECONDS"), defaults.maxKeepalive, "longest keepalive in seconds, 0 for none (MQTT 5 clients get Server Keep Alive)"),
  receiveMaximum: setting("receive-maximum", "MQTT_RECEIVE_MAXIMUM", sixteenBit(1, "a number of messages"), defaults.receiveMaximum, "inbound QoS 2 messages a client may leave awaiting PUBREL"),
  maximumQos: setting("maximum-qos", "MQTT_MAXIMUM_QOS", integer(0, 2, "a QoS", "QOS"), defaults.maximumQos, "highest QoS accepted and granted"),
  topicAliasMaximum: setting("topic-alias-maximum", "MQTT_TOPIC_ALIAS_MAXIMUM", sixteenBit(0, "a number of aliases"), defaults.topicAliasMaximum, "topic aliases a client may use towards the broker"),
  noRetain: setting("no-retain", "MQTT_NO_RETAIN", boolean, !defaults.retainAvailable, "refuse retained messages (MQTT 5 Retain Available = 0)"),
  queueQos0: setting("queue-qos0", "MQTT_QUEUE_QOS0", boolean, defaults.queueQos0, "queue QoS 0 messages for offline persistent sessions"),
  passwordFile: setting("password-file", "MQTT_PASSWORD_FILE", text("a file name", "FILE"), undefined, "Mosquitto 2 password file (write one with `passwd`); clients must then give a user name and password; re-read on SIGHUP"),
  // no fixed default: as in Mosquitto 2, anonymous clients are let in unless a password file is set
  allowAnonymous: setting("allow-anonymous", "MQTT_ALLOW_ANONYMOUS", boolean, undefined, "let clients without a user name connect (unset: on without --password-file, off with one)"),
  aclFile: setting("acl-file", "MQTT_ACL_FILE", text("a file name", "FILE"), undefined, "Mosquitto acl_file: which topics each client may publish, subscribe to and receive; re-read on SIGHUP"),
  sysInterval: setting("sys-interval", "MQTT_SYS_INTERVAL", integer(0, 65_535, "a number of seconds", "SECONDS"), defaults.sysInterval, "seconds between $SYS/broker/... updates, published retained (0: no $SYS tree)"),
  memoryTrim: setting("memory-trim", "MQTT_MEMORY_TRIM", boolean, defaults.memoryTrim, "after a burst (connects, churn, floods), once the broker is quiet, give the memory V8 grew for it back with one full GC (a pause of ~100 ms at 5,000 clients)"),
  metricsPort: setting("metrics-port", "MQTT_METRICS_PORT", port, undefined, "HTTP port serving /metrics (Prometheus), /health and /ready (0 or unset: off)"),
  metricsHost: setting("metrics-host", "MQTT_METRICS_HOST", text("a host name or address", "HOST"), "127.0.0.1", "address of the metrics HTTP endpoint"),
  otlpEndpoint: setting("otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", httpUrl, undefined, "OpenTelemetry collector base URL: metrics are posted to <URL>/v1/metrics (OTLP/HTTP JSON)"),
  otlpIntervalMs: setting("otlp-interval-ms", "OTEL_METRIC_EXPORT_INTERVAL", millis(1), 60_000, "milliseconds between OTLP metric exports"),
  persistence: setting("persistence", "MQTT_PERSISTENCE", choice(["memory", "sqlite", "redis"], "KIND"), "memory", "where sessions and retained messages live: memory (lost at exit), sqlite (on disk, kept across restarts; needs --persistence-file) or redis (sessions in a Redis server; needs --redis-url)"),
  persistenceFile: setting("persistence-file", "MQTT_PERSISTENCE_FILE", text("a file name", "FILE"), undefined, "SQLite database of --persistence sqlite, created if absent; a file that is not one stops the broker"),
  redisUrl: setting("redis-url", "MQTT_REDIS_URL", redisUrl, undefined, "Redis server of --persistence redis, e.g. redis://127.0.0.1:6379; one that cannot be reached stops the broker"),
  workers: setting("workers", "MQTT_WORKERS", integer(1, 1024, "a number of processes", "N"), 1, "broker processes sharing the listeners' ports, one core each; more than 1 needs --persistence redis and makes them a --cluster"),
  cluster: setting("cluster", "MQTT_CLUSTER", boolean, false, "act as one broker with the others on --redis-url: messages published here reach their subscribers there, retained messages are shared (needs --persistence redis)"),
  clusterHeartbeatMs: setting("cluster-heartbeat-ms", "MQTT_CLUSTER_HEARTBEAT_MS", integer(50, MAX_TIMER_MS, "a number of milliseconds", "MS"), 1000, "how often a cluster node says it is alive; one silent for three heartbeats no longer gets messages")
} as const

/** The keys of the table. */
export type Key = keyof typeof settings

/** The value type of a key. */
export type ValueOf<K extends Key> = (typeof settings)[K] extends Setting<infer A, infer _D> ? A : never

/** Every key's value; `undefined` for an optional key nobody set. */
export type Values = { readonly [K in Key]: ValueOf<K> | (undefined extends (typeof settings)[K]["default"] ? undefined : never) }

/** A value as some source gave it, with how to name it in an error (`--port -1`, `MQTT_PORT=abc`). */
export interface Given {
  readonly raw: unknown
  /** The flag, env variable or config file key: `--port`, `MQTT_PORT`, `port in broker.yaml`. */
  readonly origin: string
  /** The value as the operator wrote it there: `--port -1`, `MQTT_PORT=abc`, `port: abc in broker.yaml`. */
  readonly shown: string
}

/**
 * Where values come from: the value a source gives for a key, if it gives one. A config file's
 * source also carries its `listeners`, so whoever decodes the sources sees them.
 */
export interface Source {
  <K extends Key>(key: K, setting: Setting<ValueOf<K>>): Given | undefined
  readonly listed?: Listed | undefined
}

const quoted = (text: string): string => (text === "" || /\s|"/.test(text) ? JSON.stringify(text) : text)

/** Flag values as parsed from the command line (text, or `true` for a boolean flag), by key. */
export const fromFlags = (flags: Partial<Record<Key, string | boolean | undefined>>): Source => (key, setting) => {
  const raw = flags[key]
  if (raw === undefined) return undefined
  const origin = `--${setting.flag}`
  return { raw, origin, shown: typeof raw === "boolean" ? (raw ? origin : `${origin}=false`) : `${origin} ${quoted(raw)}` }
}

/** Environment variables; an empty one counts as unset (`MQTT_TLS_PORT=` in a compose file means "off"). */
export const fromEnv = (env: Readonly<Record<string, string | undefined>>): Source => (_key, setting) => {
  const raw = env[setting.env]
  if (raw === undefined || raw === "") return undefined
  return { raw, origin: setting.env, shown: `${setting.env}=${quoted(raw)}` }
}

/** One entry of a config file's `listeners` list, each field decoded through its key's schema. */
export interface ListedListener {
  readonly transport: "tcp" | "tls" | "ws"
  readonly port: number
  /** Its own address; absent: `host`'s. */
  readonly host?: string | undefined
  /** PEM key and certificate files: both for TLS, neither otherwise. */
  readonly key?: string | undefined
  readonly cert?: string | undefined
  /** How to name it in an error: `listeners[1] in broker.yaml`. */
  readonly origin: string
  /** How `key` and `cert` were written, for errors about those files. */
  readonly files?: { readonly key: Given; readonly cert: Given } | undefined
}

/** A config file's `listeners`: every listener one by one, instead of `port`, `tlsPort` and `wsPort`. */
export interface Listed {
  /** How to name the list in an error: `listeners in broker.yaml`. */
  readonly origin: string
  readonly entries: ReadonlyArray<ListedListener>
}

/** Decoded values, and for each key given by a source, where it came from. */
export interface Decoded {
  readonly values: Values
  /** Keys a source gave, with their origin (`--port`, `MQTT_PORT`); defaults are absent. */
  readonly given: Partial<Record<Key, Given>>
  /** The listeners listed one by one, if a config file lists them. */
  readonly listed?: Listed | undefined
}

/** The keys that describe one listener of each transport, which a `listeners` list replaces. */
export const listenerKeys = ["port", "tlsPort", "wsPort", "tlsKey", "tlsCert"] as const satisfies ReadonlyArray<Key>

const wildcard = (host: string): boolean => host === "0.0.0.0" || host === "::"

const name = (key: Key): string => `--${settings[key].flag} (${settings[key].env})`

/** A key by the name the operator used for it, or by flag and env name when it was left at its default. */
const origin = (decoded: Decoded, key: Key): string => decoded.given[key]?.origin ?? name(key)

/**
 * Relations between keys, checked once each value is fine on its own. A relation that
 * `BrokerConfig.make` would otherwise settle by adjusting a value is checked only when the
 * operator gave that value: a default that follows another key is fine, an explicit value that
 * contradicts it is refused rather than silently changed.
 */
const relations: ReadonlyArray<(decoded: Decoded) => ConfigError | undefined> = [
  (decoded) => {
    // first: with a list, the one-of-each keys would be a second, contradicting description
    const { given, listed } = decoded
    const clash = listed === undefined ? undefined : listenerKeys.find((key) => given[key] !== undefined)
    return listed === undefined || clash === undefined ? undefined : new ConfigError({
      keys: [clash, "listeners"],
      message: `${origin(decoded, clash)} cannot be combined with ${listed.origin}: the list names every listener, each TLS one with its key and cert`
    })
  },
  ({ listed, values }) => {
    // one port twice on one address (or beside the wildcard one) could not listen; port 0 may repeat
    const entries = listed?.entries ?? []
    for (const [index, entry] of entries.entries()) {
      const host = entry.host ?? values.host
      const other = entries.slice(0, index).find((earlier) => {
        const earlierHost = earlier.host ?? values.host
        return entry.port !== 0 && earlier.port === entry.port && (earlierHost === host || wildcard(host) || wildcard(earlierHost))
      })
      if (other !== undefined) {
        return new ConfigError({ keys: ["listeners"], message: `${entry.origin} has port ${entry.port} of ${other.origin} too: each listener needs its own` })
      }
    }
    return undefined
  },
  (decoded) => {
    // client certificates build on each other as in Mosquitto; a switch left without what it
    // needs would otherwise be silently ineffective, which for a security option is worse than no start
    const { given, values } = decoded
    if (values.useIdentityAsUsername && !values.requireCertificate) {
      return new ConfigError({
        keys: ["useIdentityAsUsername", "requireCertificate"],
        message: `${origin(decoded, "useIdentityAsUsername")} needs ${name("requireCertificate")}: only a required certificate names the client`
      })
    }
    if (values.requireCertificate && values.tlsCa === undefined) {
      return new ConfigError({
        keys: ["requireCertificate", "tlsCa"],
        message: `${origin(decoded, "requireCertificate")} needs ${name("tlsCa")}: client certificates must chain to a CA`
      })
    }
    if (given.tlsCa !== undefined && given.tlsPort === undefined && !(decoded.listed?.entries.some((entry) => entry.transport === "tls") ?? false)) {
      return new ConfigError({
        keys: ["tlsCa", "tlsPort"],
        message: decoded.listed === undefined
          ? `${origin(decoded, "tlsCa")} is set but ${name("tlsPort")} is not: client certificates are checked by the TLS listener`
          : `${origin(decoded, "tlsCa")} is set but ${decoded.listed.origin} has no tls listener: client certificates are checked by the TLS listener`
      })
    }
    return undefined
  },
  (decoded) => {
    const { given } = decoded
    const parts = (["tlsPort", "tlsKey", "tlsCert"] as const)
    if (!parts.some((key) => given[key] !== undefined)) return undefined
    const missing = parts.filter((key) => given[key] === undefined)
    if (missing.length === 0) return undefined
    const present = parts.filter((key) => given[key] !== undefined)
    const subject = present.map((key) => origin(decoded, key)).join(" and ")
    return new ConfigError({
      keys: [...parts],
      message: given.tlsPort === undefined
        ? `${subject} ${present.length === 1 ? "is" : "are"} set but ${name("tlsPort")} is not: a TLS listener needs its port, key and certificate`
        : `${subject} needs ${missing.map(name).join(" and ")}`
    })
  },
  (decoded) => {
    // two listeners on one port: the second would fail with "address already in use" anyway,
    // but that is the configuration's fault, not the machine's (0 picks a free port for each)
    const { values } = decoded
    const ports = (["port", "tlsPort", "wsPort", "metricsPort"] as const).filter((key) => values[key] !== undefined && values[key] !== 0)
    for (const [index, key] of ports.entries()) {
      const other = ports.slice(0, index).find((earlier) => values[earlier] === values[key])
      if (other !== undefined) {
        return new ConfigError({
          keys: [key, other],
          message: `${decoded.given[key]?.shown ?? origin(decoded, key)} is the port of ${origin(decoded, other)} too: each listener needs its own`
        })
      }
    }
    return undefined
  },
  (decoded) => {
    const { given, values } = decoded
    if (values.persistence === "sqlite" && values.persistenceFile === undefined) {
      return new ConfigError({
        keys: ["persistence", "persistenceFile"],
        message: `${origin(decoded, "persistence")} sqlite needs ${name("persistenceFile")}: the database file to keep sessions in`
      })
    }
    if (values.persistence === "redis" && values.redisUrl === undefined) {
      return new ConfigError({
        keys: ["persistence", "redisUrl"],
        message: `${origin(decoded, "persistence")} redis needs ${name("redisUrl")}: the Redis server to keep sessions in`
      })
    }
    if (given.redisUrl !== undefined && values.persistence !== "redis") {
      return new ConfigError({
        keys: ["redisUrl", "persistence"],
        message: `${origin(decoded, "redisUrl")} is set but ${name("persistence")} is not redis: sessions would not be kept there`
      })
    }
    if (values.workers > 1 && values.persistence !== "redis") {
      return new ConfigError({
        keys: ["workers", "persistence"],
        message: `${origin(decoded, "workers")} ${values.workers} needs ${name("persistence")} redis: each worker is a process of its own, and only Redis shares sessions and messages between them`
      })
    }
    // a heartbeat without --cluster is harmless, and --print-config writes every key: not refused
    if (values.cluster && values.persistence !== "redis") {
      return new ConfigError({
        keys: ["cluster", "persistence"],
        message: `${origin(decoded, "cluster")} needs ${name("persistence")} redis: the nodes meet in the Redis server that keeps their sessions`
      })
    }
    if (given.persistenceFile !== undefined && values.persistence !== "sqlite") {
      return new ConfigError({
        keys: ["persistenceFile", "persistence"],
        message: `${origin(decoded, "persistenceFile")} is set but ${name("persistence")} is not sqlite: sessions would not be kept in it`
      })
    }
    return undefined
  },
  ({ given, values }) =>
    given.maxReceivingBytes !== undefined && values.maxReceivingBytes < values.maxPacketSize
      ? new ConfigError({
        keys: ["maxReceivingBytes", "maxPacketSize"],
        message: `${given.maxReceivingBytes.shown} is less than the largest packet (${values.maxPacketSize}, ${name("maxPacketSize")}): one packet must fit`
      })
      : undefined,
  ({ given, values }) =>
    given.outboxHighWaterBytes !== undefined && values.outboxHighWaterBytes > values.maxOutboxBytes
      ? new ConfigError({
        keys: ["outboxHighWaterBytes", "maxOutboxBytes"],
        message: `${given.outboxHighWaterBytes.shown} is more than the outbox cap (${values.maxOutboxBytes}, ${name("maxOutboxBytes")})`
      })
      : undefined,
  ({ given, values }) =>
    given.slowConsumerDisconnectMs !== undefined && values.slowConsumerDisconnectMs !== 0 &&
      values.slowConsumerDisconnectMs < values.slowConsumerMs
      ? new ConfigError({
        keys: ["slowConsumerDisconnectMs", "slowConsumerMs"],
        message: `${given.slowConsumerDisconnectMs.shown} is less than the stall time (${values.slowConsumerMs}, ${name("slowConsumerMs")}); use 0 to never disconnect`
      })
      : undefined
]

/**
 * Looks every key up in `sources` (first that gives a value wins, else the default), decodes it
 * through the key's schema, then checks the relations between keys (and the listeners a config
 * file's source lists). The first problem is the error: one line naming where the value came from,
 * the value, and what is allowed.
 */
export const decode = (sources: ReadonlyArray<Source>): Result.Result<Decoded, ConfigError> => {
  const values: Record<string, unknown> = {}
  const given: Partial<Record<Key, Given>> = {}
  for (const key of Object.keys(settings) as Array<Key>) {
    const setting = settings[key] as Setting<unknown>
    let found: Given | undefined
    for (const source of sources) {
      found = source(key, setting as Setting<never>)
      if (found !== undefined) break
    }
    if (found === undefined) {
      values[key] = setting.default
      continue
    }
    const decoded = Schema.decodeUnknownResult(setting.kind.schema)(found.raw)
    if (Result.isFailure(decoded)) {
      return Result.fail(new ConfigError({ keys: [key], message: `${found.shown} is not ${setting.kind.allowed}` }))
    }
    values[key] = decoded.success
    given[key] = found
  }
  const listed = sources.find((source) => source.listed !== undefined)?.listed
  const result: Decoded = { values: values as Values, given, listed }
  for (const relation of relations) {
    const error = relation(result)
    if (error !== undefined) return Result.fail(error)
  }
  return Result.succeed(result)
}
