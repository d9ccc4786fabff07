import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Result } from "effect"
import { generateKeyPairSync } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as BrokerConfig from "../../src/config/BrokerConfig.ts"
import * as Load from "../../src/config/Load.ts"
import * as Settings from "../../src/config/Settings.ts"
import { type FlagValues, loadConfig } from "../support/LoadConfig.ts"

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
const keyFile = fixture("tls-key.pem")
const certFile = fixture("tls-cert.pem")

const load = loadConfig

describe("Settings: one bad value, one line naming where it came from", () => {
  const refused: ReadonlyArray<[FlagValues, Record<string, string>, string]> = [
    [{ port: "-1" }, {}, "--port -1 is not a port (0-65535)"],
    [{ port: "70000" }, {}, "--port 70000 is not a port (0-65535)"],
    [{}, { MQTT_PORT: "abc" }, "MQTT_PORT=abc is not a port (0-65535)"],
    [{ port: "0x10" }, {}, "--port 0x10 is not a port (0-65535)"],
    [{ port: "1.5" }, {}, "--port 1.5 is not a port (0-65535)"],
    [{ port: "" }, {}, "--port \"\" is not a port (0-65535)"],
    [{ tlsPort: "65536", tlsKey: keyFile, tlsCert: certFile }, {}, "--tls-port 65536 is not a port (0-65535)"],
    [{ wsPort: "-2" }, {}, "--ws-port -2 is not a port (0-65535)"],
    [{ host: "" }, {}, "--host \"\" is not a host name or address"],
    [{ connectTimeoutMs: "0" }, {}, "--connect-timeout-ms 0 is not a number of milliseconds (1-2147483647)"],
    [{ maxConnections: "-1" }, {}, "--max-connections -1 is not a number of connections (0 or more)"],
    [{ maxConnectsPerSecond: "1.5" }, {}, "--max-connect-rate 1.5 is not a number of CONNECTs per second (0 or more)"],
    [{ maxAuthFailuresPerSecond: "-1" }, {}, "--max-auth-failure-rate -1 is not a number of failed authentications per second (0 or more)"],
    [{ logFormat: "xml" }, {}, "--log-format xml is not one of auto, logfmt, json, pretty"],
    [{ maxPacketSize: "-5" }, {}, "--max-packet-size -5 is not a packet size in bytes (1-268435455)"],
    [{ maxPacketSize: "268435456" }, {}, "--max-packet-size 268435456 is not a packet size in bytes (1-268435455)"],
    [{ maxReceivingBytes: "0" }, {}, "--max-receiving-bytes 0 is not a number of bytes (1 or more)"],
    [{ maxPayloadSize: "-1" }, {}, "--max-payload-size -1 is not a payload size in bytes (0-268435455)"],
    [{}, { MQTT_MAX_SUBSCRIPTIONS_PER_CLIENT: "-1" }, "MQTT_MAX_SUBSCRIPTIONS_PER_CLIENT=-1 is not a number of subscriptions (0 or more)"],
    [{ maxTopicLength: "0" }, {}, "--max-topic-length 0 is not a topic length in bytes (1-65535)"],
    [{}, { MQTT_MAX_TOPIC_LEVELS: "65536" }, "MQTT_MAX_TOPIC_LEVELS=65536 is not a number of topic levels (0-65535)"],
    [{ maxQueuedMessages: "-1" }, {}, "--max-queued-messages -1 is not a number of messages (0 or more)"],
    [{ maxInflightMessages: "0" }, {}, "--max-inflight-messages 0 is not a number of messages (1-65535)"],
    [{ maxOutboxBytes: "0" }, {}, "--max-outbox-bytes 0 is not a number of bytes (1 or more)"],
    [{ outboxHighWaterBytes: "0" }, {}, "--outbox-high-water-bytes 0 is not a number of bytes (1 or more)"],
    [{ slowConsumerMs: "0" }, {}, "--slow-consumer-ms 0 is not a number of milliseconds (1-2147483647)"],
    [{ slowConsumerDisconnectMs: "-1" }, {}, "--slow-consumer-disconnect-ms -1 is not a number of milliseconds (0-2147483647)"],
    [{ persistentSessionExpiry: "4294967296" }, {}, "--persistent-session-expiry 4294967296 is not a number of seconds (0-4294967295)"],
    [{ maxKeepalive: "65536" }, {}, "--max-keepalive 65536 is not a number of seconds (0-65535)"],
    [{ receiveMaximum: "0" }, {}, "--receive-maximum 0 is not a number of messages (1-65535)"],
    [{ maximumQos: "3" }, {}, "--maximum-qos 3 is not a QoS (0-2)"],
    [{ topicAliasMaximum: "65536" }, {}, "--topic-alias-maximum 65536 is not a number of aliases (0-65535)"],
    [{}, { MQTT_NO_RETAIN: "maybe" }, "MQTT_NO_RETAIN=maybe is not a boolean (true/false, yes/no, on/off, 1/0)"],
    [{}, { MQTT_QUEUE_QOS0: "2" }, "MQTT_QUEUE_QOS0=2 is not a boolean (true/false, yes/no, on/off, 1/0)"],
    [{ passwordFile: "" }, {}, "--password-file \"\" is not a file name"],
    [{ aclFile: "" }, {}, "--acl-file \"\" is not a file name"],
    [{ tlsCa: "" }, {}, "--tls-ca \"\" is not a file name"],
    [{}, { MQTT_REQUIRE_CERTIFICATE: "maybe" }, "MQTT_REQUIRE_CERTIFICATE=maybe is not a boolean (true/false, yes/no, on/off, 1/0)"],
    [{}, { MQTT_USE_IDENTITY_AS_USERNAME: "2" }, "MQTT_USE_IDENTITY_AS_USERNAME=2 is not a boolean (true/false, yes/no, on/off, 1/0)"],
    [{}, { MQTT_ALLOW_ANONYMOUS: "maybe" }, "MQTT_ALLOW_ANONYMOUS=maybe is not a boolean (true/false, yes/no, on/off, 1/0)"],
    [{ sysInterval: "-1" }, {}, "--sys-interval -1 is not a number of seconds (0-65535)"],
    [{}, { MQTT_MEMORY_TRIM: "sometimes" }, "MQTT_MEMORY_TRIM=sometimes is not a boolean (true/false, yes/no, on/off, 1/0)"],
    [{}, { MQTT_METRICS_PORT: "65536" }, "MQTT_METRICS_PORT=65536 is not a port (0-65535)"],
    [{ metricsHost: "" }, {}, "--metrics-host \"\" is not a host name or address"],
    [{}, { OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318 is not an http:// or https:// URL"],
    [{ otlpIntervalMs: "0" }, {}, "--otlp-interval-ms 0 is not a number of milliseconds (1-2147483647)"],
    [{ persistence: "mongodb" }, {}, "--persistence mongodb is not one of memory, sqlite, redis"],
    [{ persistenceFile: "" }, {}, "--persistence-file \"\" is not a file name"],
    [{ redisUrl: "127.0.0.1:6379" }, {}, "--redis-url 127.0.0.1:6379 is not a redis:// or rediss:// URL"],
    [{ workers: "0" }, {}, "--workers 0 is not a number of processes (1-1024)"],
    [{}, { MQTT_WORKERS: "4" }, "MQTT_WORKERS 4 needs --persistence (MQTT_PERSISTENCE) redis: each worker is a process of its own, and only Redis shares sessions and messages between them"],
    [{}, { MQTT_CLUSTER: "maybe" }, "MQTT_CLUSTER=maybe is not a boolean (true/false, yes/no, on/off, 1/0)"],
    [{ clusterHeartbeatMs: "10" }, {}, "--cluster-heartbeat-ms 10 is not a number of milliseconds (50-2147483647)"]
  ]
  for (const [flags, env, message] of refused) {
    it(message, () => {
      expect(load(flags, env)).toBe(message)
    })
  }

  it("every key of the table is covered above (a new key needs its bad value here)", () => {
    // the key each message is about: its first word, a flag or an env variable
    const covered = new Set(refused.map(([, , message]) => {
      const named = message.split(/[ =]/)[0]!
      return Object.entries(Settings.settings).find(([, s]) => `--${s.flag}` === named || s.env === named)?.[0]
    }))
    // TLS key and certificate files are covered by the TLS tests below
    expect([...Object.keys(Settings.settings)].filter((key) => !covered.has(key))).toEqual(["tlsKey", "tlsCert"])
  })

  it("the error names the keys involved", () => {
    const exit = Effect.runSyncExit(Load.load([Settings.fromFlags({ maximumQos: "3" })]))
    expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toMatchObject({ _tag: "ConfigError", keys: ["maximumQos"] })
  })
})

describe("Settings: dependencies between keys", () => {
  it("--tls-port needs --tls-key and --tls-cert", () => {
    expect(load({ tlsPort: "8883" })).toBe("--tls-port needs --tls-key (MQTT_TLS_KEY) and --tls-cert (MQTT_TLS_CERT)")
    expect(load({ tlsPort: "8883", tlsKey: keyFile })).toBe("--tls-port and --tls-key needs --tls-cert (MQTT_TLS_CERT)")
    expect(load({}, { MQTT_TLS_PORT: "8883" })).toBe("MQTT_TLS_PORT needs --tls-key (MQTT_TLS_KEY) and --tls-cert (MQTT_TLS_CERT)")
  })

  it("two listeners on one port are refused; port 0 (any free port) may repeat", () => {
    expect(load({ wsPort: "1883" })).toBe("--ws-port 1883 is the port of --port (MQTT_PORT) too: each listener needs its own")
    expect(load({ port: "8883", tlsPort: "8883", tlsKey: keyFile, tlsCert: certFile })).toBe("--tls-port 8883 is the port of --port too: each listener needs its own")
    expect(load({ port: "0", wsPort: "0" })).toMatchObject({ port: 0, webSocket: { port: 0 } })
  })

  it("a TLS key or certificate without --tls-port is refused, not ignored", () => {
    expect(load({ tlsKey: keyFile, tlsCert: certFile })).toBe(
      "--tls-key and --tls-cert are set but --tls-port (MQTT_TLS_PORT) is not: a TLS listener needs its port, key and certificate"
    )
  })

  it("a missing TLS file, a file that is not PEM, and a key that does not match the certificate", () => {
    expect(load({ tlsPort: "0", tlsKey: "/nonexistent/key.pem", tlsCert: certFile })).toBe(
      "--tls-key /nonexistent/key.pem cannot be read: no such file"
    )
    expect(load({ tlsPort: "0", tlsKey: keyFile }, { MQTT_TLS_CERT: "/nonexistent/cert.pem" })).toBe(
      "MQTT_TLS_CERT=/nonexistent/cert.pem cannot be read: no such file"
    )
    expect(load({ tlsPort: "0", tlsKey: certFile, tlsCert: certFile })).toBe(
      `--tls-key ${certFile} and --tls-cert ${certFile} cannot serve TLS: the key is not a PEM private key`
    )
    const dir = mkdtempSync(join(tmpdir(), "settings-"))
    const otherKey = join(dir, "other-key.pem")
    writeFileSync(otherKey, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }))
    expect(load({ tlsPort: "0", tlsKey: otherKey, tlsCert: certFile })).toBe(
      `--tls-key ${otherKey} and --tls-cert ${certFile} cannot serve TLS: the key does not match the certificate`
    )
  })

  it("--max-receiving-bytes below the largest packet is refused; a default that follows is not", () => {
    expect(load({ maxReceivingBytes: "1000" })).toBe(
      "--max-receiving-bytes 1000 is less than the largest packet (33554432, --max-packet-size (MQTT_MAX_PACKET_SIZE)): one packet must fit"
    )
    expect(load({ maxReceivingBytes: "1000", maxPacketSize: "1000" })).toMatchObject({ maxReceivingBytes: 1000, maxPacketSize: 1000 })
    expect(load({ maxPacketSize: "268435455" })).toMatchObject({ maxPacketSize: 268435455, maxReceivingBytes: 268435456 })
  })

  it("an outbox high-water mark above the outbox cap is refused when given, follows the cap when not", () => {
    expect(load({ outboxHighWaterBytes: "2000", maxOutboxBytes: "1000" })).toBe(
      "--outbox-high-water-bytes 2000 is more than the outbox cap (1000, --max-outbox-bytes (MQTT_MAX_OUTBOX_BYTES))"
    )
    expect(load({ maxOutboxBytes: "1000" })).toMatchObject({ maxOutboxBytes: 1000, outboxHighWaterBytes: 1000 })
  })

  it("a slow-consumer disconnect sooner than the stall time is refused; 0 (never) is fine", () => {
    expect(load({ slowConsumerDisconnectMs: "1000", slowConsumerMs: "2000" })).toBe(
      "--slow-consumer-disconnect-ms 1000 is less than the stall time (2000, --slow-consumer-ms (MQTT_SLOW_CONSUMER_MS)); use 0 to never disconnect"
    )
    expect(load({ slowConsumerDisconnectMs: "0", slowConsumerMs: "2000" })).toMatchObject({ slowConsumerDisconnectMs: 0 })
  })
})

describe("Settings: a good configuration", () => {
  it("nothing given is the defaults", () => {
    expect(load({})).toEqual(BrokerConfig.defaults)
  })

  it("flags and env decode to the BrokerConfig, flags winning over env, an empty env variable unset", () => {
    const config = load(
      {
        host: "127.0.0.1",
        port: "1884",
        tlsPort: "8884",
        tlsKey: keyFile,
        maxPacketSize: "1048576",
        maximumQos: "1",
        noRetain: true
      },
      {
        MQTT_PORT: "9999",
        MQTT_TLS_CERT: certFile,
        MQTT_WS_PORT: "8080",
        MQTT_RECEIVE_MAXIMUM: "100",
        MQTT_QUEUE_QOS0: "yes",
        MQTT_MAX_INFLIGHT_MESSAGES: "",
        MQTT_TOPIC_ALIAS_MAXIMUM: "+7"
      }
    )
    if (typeof config === "string") throw new Error(config)
    expect(config).toEqual({
      ...BrokerConfig.defaults,
      host: "127.0.0.1",
      port: 1884,
      tls: { port: 8884, host: "127.0.0.1", key: expect.stringContaining("PRIVATE KEY"), cert: expect.stringContaining("CERTIFICATE") },
      webSocket: { port: 8080, host: "127.0.0.1" },
      maxPacketSize: 1048576,
      maximumQos: 1,
      retainAvailable: false,
      receiveMaximum: 100,
      queueQos0: true,
      topicAliasMaximum: 7
    })
  })

  it("observability: $SYS interval, metrics endpoint (0: off) and OTLP export decode to the BrokerConfig", () => {
    expect(load({ sysInterval: "0", metricsPort: "9100" }, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/", OTEL_METRIC_EXPORT_INTERVAL: "5000" })).toMatchObject({
      sysInterval: 0,
      metrics: { port: 9100, host: "127.0.0.1" },
      otlp: { endpoint: "http://collector:4318/", exportIntervalMs: 5000 }
    })
    expect(load({ metricsPort: "0" })).toMatchObject({ metrics: undefined, otlp: undefined, sysInterval: 10 })
    expect(load({ metricsPort: "1883" })).toBe("--metrics-port 1883 is the port of --port (MQTT_PORT) too: each listener needs its own")
  })

  it("memory trim: on by default, off from its flag or variable", () => {
    expect(load({})).toMatchObject({ memoryTrim: true })
    expect(load({}, { MQTT_MEMORY_TRIM: "off" })).toMatchObject({ memoryTrim: false })
    expect(load({ memoryTrim: "false" })).toMatchObject({ memoryTrim: false })
  })

  it("a value already typed (as a config file gives it) passes the same schema as text", () => {
    const fromFile: Settings.Source = (key) => (key === "port" ? { raw: 1885, origin: "port", shown: "port: 1885" } : key === "maximumQos" ? { raw: 7, origin: "maximumQos", shown: "maximumQos: 7" } : undefined)
    expect(Result.getOrThrow(Settings.decode([Settings.fromFlags({ maximumQos: "0" }), fromFile])).values).toMatchObject({ port: 1885, maximumQos: 0 })
    expect(Result.isFailure(Settings.decode([fromFile]))).toBe(true)
  })
})
