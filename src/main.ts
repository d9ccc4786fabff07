/**
 * The node entrypoint: `npm start`. Flags override environment variables, which override the
 * defaults in `config/BrokerConfig.ts`; the memory session plugin is provided by default.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Config, Effect, Exit, Layer, Option } from "effect"
import { defaultTeardown, type Teardown } from "effect/Runtime"
import { Command, Flag } from "effect/cli"
import { readFileSync } from "node:fs"
import * as Broker from "./broker/Broker.ts"
import * as BrokerConfig from "./config/BrokerConfig.ts"
import { SessionPlugin } from "./plugin/SessionPlugin.ts"

const { defaults } = BrokerConfig

const int = (flag: string, env: string, fallback: number, description: string) =>
  Flag.Int(flag).pipe(
    Flag.withFallbackConfig(Config.Int(env)),
    Flag.withDefault(fallback),
    Flag.withDescription(`${description} (env ${env}, default ${fallback})`)
  )

const optionalText = (flag: string, env: string, description: string) =>
  Flag.String(flag).pipe(
    Flag.withFallbackConfig(Config.String(env)),
    Flag.optional,
    Flag.withDescription(`${description} (env ${env})`)
  )

const optionalInt = (flag: string, env: string, description: string) =>
  Flag.Int(flag).pipe(
    Flag.withFallbackConfig(Config.Int(env)),
    Flag.optional,
    Flag.withDescription(`${description} (env ${env})`)
  )

const command = Command.make(
  "effect-mqtt-broker",
  {
    host: Flag.String("host").pipe(
      Flag.withFallbackConfig(Config.String("MQTT_HOST")),
      Flag.withDefault(defaults.host),
      Flag.withDescription(`TCP listener address (env MQTT_HOST, default ${defaults.host})`)
    ),
    port: int("port", "MQTT_PORT", defaults.port, "TCP listener port"),
    tlsPort: optionalInt("tls-port", "MQTT_TLS_PORT", "TLS listener port (needs --tls-key and --tls-cert)"),
    tlsKey: optionalText("tls-key", "MQTT_TLS_KEY", "PEM private key file for TLS"),
    tlsCert: optionalText("tls-cert", "MQTT_TLS_CERT", "PEM certificate file for TLS"),
    wsPort: optionalInt("ws-port", "MQTT_WS_PORT", "WebSocket listener port"),
    connectTimeoutMs: int("connect-timeout-ms", "MQTT_CONNECT_TIMEOUT_MS", defaults.connectTimeoutMs, "close connections that send no CONNECT within this time"),
    maxPacketSize: int("max-packet-size", "MQTT_MAX_PACKET_SIZE", defaults.maxPacketSize, "largest inbound packet in bytes"),
    maxReceivingBytes: int("max-receiving-bytes", "MQTT_MAX_RECEIVING_BYTES", defaults.maxReceivingBytes, "bytes of partly received packets held across all connections; more waits"),
    maxQueuedMessages: int("max-queued-messages", "MQTT_MAX_QUEUED_MESSAGES", defaults.maxQueuedMessages, "per-session queue bound (drop oldest)"),
    maxInflightMessages: int("max-inflight-messages", "MQTT_MAX_INFLIGHT_MESSAGES", defaults.maxInflightMessages, "outbound QoS 1/2 window per client"),
    maxOutboxBytes: int("max-outbox-bytes", "MQTT_MAX_OUTBOX_BYTES", defaults.maxOutboxBytes, "hard cap on bytes waiting to be written to one client; QoS 0 past it is dropped"),
    outboxHighWaterBytes: int("outbox-high-water-bytes", "MQTT_OUTBOX_HIGH_WATER_BYTES", defaults.outboxHighWaterBytes, "bytes waiting for one client above which its publishers wait (until half of it)"),
    slowConsumerMs: int("slow-consumer-ms", "MQTT_SLOW_CONSUMER_MS", defaults.slowConsumerMs, "a congested client with no write completed for this long is stalled: publishers stop waiting for it"),
    slowConsumerDisconnectMs: int("slow-consumer-disconnect-ms", "MQTT_SLOW_CONSUMER_DISCONNECT_MS", defaults.slowConsumerDisconnectMs, "disconnect a stalled client after this long without progress (0: never)"),
    persistentSessionExpiry: int("persistent-session-expiry", "MQTT_PERSISTENT_SESSION_EXPIRY", defaults.persistentSessionExpiry, "seconds a 3.1.1 clean=0 session outlives its connection (4294967295: never)"),
    maxKeepalive: int("max-keepalive", "MQTT_MAX_KEEPALIVE", defaults.maxKeepalive, "longest keepalive in seconds, 0 for none (MQTT 5 clients get Server Keep Alive)"),
    receiveMaximum: int("receive-maximum", "MQTT_RECEIVE_MAXIMUM", defaults.receiveMaximum, "inbound QoS 2 messages a client may leave awaiting PUBREL"),
    maximumQos: int("maximum-qos", "MQTT_MAXIMUM_QOS", defaults.maximumQos, "highest QoS accepted and granted"),
    topicAliasMaximum: int("topic-alias-maximum", "MQTT_TOPIC_ALIAS_MAXIMUM", defaults.topicAliasMaximum, "topic aliases a client may use towards the broker"),
    noRetain: Flag.Boolean("no-retain").pipe(
      Flag.withFallbackConfig(Config.Boolean("MQTT_NO_RETAIN")),
      Flag.withDefault(false),
      Flag.withDescription("refuse retained messages (MQTT 5 Retain Available = 0) (env MQTT_NO_RETAIN)")
    ),
    queueQos0: Flag.Boolean("queue-qos0").pipe(
      Flag.withFallbackConfig(Config.Boolean("MQTT_QUEUE_QOS0")),
      Flag.withDefault(defaults.queueQos0),
      Flag.withDescription("queue QoS 0 messages for offline persistent sessions (env MQTT_QUEUE_QOS0)")
    )
  },
  (flags) => {
    const tls = Option.isSome(flags.tlsPort) && Option.isSome(flags.tlsKey) && Option.isSome(flags.tlsCert)
      ? {
        port: flags.tlsPort.value,
        host: flags.host,
        key: readFileSync(flags.tlsKey.value, "utf8"),
        cert: readFileSync(flags.tlsCert.value, "utf8")
      }
      : undefined
    const config: Partial<BrokerConfig.BrokerConfig> = {
      host: flags.host,
      port: flags.port,
      tls,
      webSocket: Option.isSome(flags.wsPort) ? { port: flags.wsPort.value, host: flags.host } : undefined,
      connectTimeoutMs: flags.connectTimeoutMs,
      maxPacketSize: flags.maxPacketSize,
      maxReceivingBytes: flags.maxReceivingBytes,
      maxQueuedMessages: flags.maxQueuedMessages,
      maxInflightMessages: flags.maxInflightMessages,
      maxOutboxBytes: flags.maxOutboxBytes,
      outboxHighWaterBytes: flags.outboxHighWaterBytes,
      slowConsumerMs: flags.slowConsumerMs,
      slowConsumerDisconnectMs: flags.slowConsumerDisconnectMs,
      queueQos0: flags.queueQos0,
      persistentSessionExpiry: flags.persistentSessionExpiry,
      maxKeepalive: flags.maxKeepalive,
      receiveMaximum: flags.receiveMaximum,
      maximumQos: Math.min(2, Math.max(0, flags.maximumQos)) as 0 | 1 | 2,
      retainAvailable: !flags.noRetain,
      topicAliasMaximum: flags.topicAliasMaximum
    }
    return Layer.launch(Broker.layer(config).pipe(Layer.provide(SessionPlugin.layer)))
  }
).pipe(Command.withDescription("An MQTT 5 / 3.1.1 broker on Effect 4 with the in-memory session plugin"))

/** SIGTERM / Ctrl-C is how a broker is meant to stop: a clean shutdown exits 0, not 130. */
const teardown: Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : defaultTeardown(exit, onExit)

command.pipe(
  Command.run({ version: "0.1.0" }),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain({ teardown })
)
