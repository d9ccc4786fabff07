/**
 * From sources (flags, env, a config file) to the `BrokerConfig` the broker starts with: every
 * value decoded and checked (`Settings.decode`), the TLS files read and checked (`TlsFiles.load`).
 * Fails with the first `ConfigError`, before anything listens. A config file's `listeners`
 * (`ConfigFile.ts`, carried by its source) replace the port keys.
 */
import { Effect, Layer } from "effect"
import * as AclAuthorizer from "../auth/AclAuthorizer.ts"
import { Authenticator } from "../auth/Authenticator.ts"
import { Authorizer } from "../auth/Authorizer.ts"
import * as PasswordAuthenticator from "../auth/PasswordAuthenticator.ts"
import * as BrokerConfig from "./BrokerConfig.ts"
import { ConfigError } from "./ConfigError.ts"
import * as Settings from "./Settings.ts"
import * as TlsFiles from "./TlsFiles.ts"

/** A config file's listener, on `host` unless it names its own; a TLS one with its files read and checked. */
const listenerOf = (
  entry: Settings.ListedListener,
  host: string,
  clientCertificates: Partial<BrokerConfig.TlsListenerConfig>
): Effect.Effect<BrokerConfig.ListenerConfig, ConfigError> => {
  const at = { port: entry.port, host: entry.host ?? host }
  // ConfigFile.parse has checked that a TLS entry names both files, and no other entry does
  if (entry.transport !== "tls" || entry.key === undefined || entry.cert === undefined) {
    return Effect.succeed({ transport: entry.transport === "ws" ? "ws" : "tcp", ...at })
  }
  return TlsFiles.load({ key: entry.key, cert: entry.cert }, { key: entry.files?.key, cert: entry.files?.cert }).pipe(
    Effect.map((files) => ({ transport: "tls" as const, ...at, ...files, ...clientCertificates }))
  )
}

/** The broker configuration the sources describe, highest precedence first. */
export const load = Effect.fnUntraced(function*(
  sources: ReadonlyArray<Settings.Source>
): Effect.fn.Return<BrokerConfig.BrokerConfig, ConfigError> {
  const { values, given, listed } = yield* Effect.fromResult(Settings.decode(sources))
  // client certificates only when asked for: a plain TLS listener's config stays as it was;
  // the CA is read once, whichever TLS listeners it serves
  const clientCertificates = {
    ...(values.tlsCa === undefined ? {} : { ca: yield* TlsFiles.loadCa(values.tlsCa, given.tlsCa) }),
    ...(values.requireCertificate ? { requireCertificate: true } : {}),
    ...(values.useIdentityAsUsername ? { useIdentityAsUsername: true } : {})
  }
  const listeners = listed === undefined
    ? undefined
    : yield* Effect.forEach(listed.entries, (entry) => listenerOf(entry, values.host, clientCertificates))
  // Settings.decode has checked that the TLS port, key and certificate come together
  const tls = listeners !== undefined
    // the listed TLS listeners share the client-certificate settings connections read from here
    ? listeners.find((listener) => listener.transport === "tls")
    : values.tlsPort !== undefined && values.tlsKey !== undefined && values.tlsCert !== undefined
    ? {
      port: values.tlsPort,
      host: values.host,
      ...(yield* TlsFiles.load({ key: values.tlsKey, cert: values.tlsCert }, { key: given.tlsKey, cert: given.tlsCert })),
      ...clientCertificates
    }
    : undefined
  return BrokerConfig.make({
    host: values.host,
    port: values.port,
    tls,
    webSocket: listeners !== undefined
      ? listeners.find((listener) => listener.transport === "ws")
      : values.wsPort === undefined ? undefined : { port: values.wsPort, host: values.host },
    listeners,
    connectTimeoutMs: values.connectTimeoutMs,
    maxConnections: values.maxConnections,
    maxConnectsPerSecond: values.maxConnectsPerSecond,
    maxAuthFailuresPerSecond: values.maxAuthFailuresPerSecond,
    maxPacketSize: values.maxPacketSize,
    maxReceivingBytes: values.maxReceivingBytes,
    maxPayloadSize: values.maxPayloadSize,
    maxSubscriptionsPerClient: values.maxSubscriptionsPerClient,
    maxTopicLength: values.maxTopicLength,
    maxTopicLevels: values.maxTopicLevels,
    maxQueuedMessages: values.maxQueuedMessages,
    maxInflightMessages: values.maxInflightMessages,
    maxOutboxBytes: values.maxOutboxBytes,
    outboxHighWaterBytes: values.outboxHighWaterBytes,
    slowConsumerMs: values.slowConsumerMs,
    slowConsumerDisconnectMs: values.slowConsumerDisconnectMs,
    queueQos0: values.queueQos0,
    persistentSessionExpiry: values.persistentSessionExpiry,
    maxKeepalive: values.maxKeepalive,
    receiveMaximum: values.receiveMaximum,
    // the schema admits 0, 1 and 2 only
    maximumQos: values.maximumQos as 0 | 1 | 2,
    retainAvailable: !values.noRetain,
    topicAliasMaximum: values.topicAliasMaximum,
    sysInterval: values.sysInterval,
    memoryTrim: values.memoryTrim,
    metrics: values.metricsPort === undefined || values.metricsPort === 0 ? undefined : { port: values.metricsPort, host: values.metricsHost },
    otlp: values.otlpEndpoint === undefined ? undefined : { endpoint: values.otlpEndpoint, exportIntervalMs: values.otlpIntervalMs },
    // Settings.decode has checked that a cluster comes with redis persistence, hence its URL;
    // --workers N are a cluster of their own whether or not --cluster says so
    cluster: (values.cluster || values.workers > 1) && values.redisUrl !== undefined ? { url: values.redisUrl, heartbeatMs: values.clusterHeartbeatMs } : undefined
  })
})

/** How clients are authenticated, from the `passwordFile` and `allowAnonymous` keys. */
export interface Authentication {
  /**
   * The `Authenticator` to provide to the broker (none: allow-all). Building it reads the password
   * file; a file that cannot be used fails it with a `ConfigError` naming the flag or variable.
   */
  readonly layer: Layer.Layer<Authenticator> | Layer.Layer<Authenticator, ConfigError> | undefined
  /** Whether clients without a user name get in: README "Security" warns when that is beyond loopback. */
  readonly anonymous: boolean
}

/** Authentication as the sources describe it; Mosquitto 2's default: anonymous only without a password file. */
export const authentication = Effect.fnUntraced(function*(
  sources: ReadonlyArray<Settings.Source>
): Effect.fn.Return<Authentication, ConfigError> {
  const { values, given } = yield* Effect.fromResult(Settings.decode(sources))
  const path = values.passwordFile
  const anonymous = values.allowAnonymous ?? path === undefined
  if (path === undefined) return { layer: undefined, anonymous }
  const shown = given.passwordFile?.shown ?? path
  return {
    // re-read on SIGHUP for as long as the broker runs
    layer: PasswordAuthenticator.layer(path, { allowAnonymous: anonymous }).pipe(
      Layer.catchTag("PasswordFileLoadError", (error) => Layer.effect(Authenticator, Effect.fail(new ConfigError({ keys: ["passwordFile"], message: `${shown}: ${error.problem}` }))))
    ),
    anonymous
  }
})

/** `--log-format` as given (or `auto`): how the node entrypoint writes log lines (`entry/LogFormat.ts`). */
export const logFormat = (sources: ReadonlyArray<Settings.Source>): Effect.Effect<Settings.LogFormat, ConfigError> =>
  Effect.map(Effect.fromResult(Settings.decode(sources)), ({ values }) => values.logFormat)

/**
 * The `Authorizer` from `--acl-file` (none: allow-all). Building it reads the file; a file that
 * cannot be used fails it with a `ConfigError` naming the flag or variable and the line.
 */
export const authorization = Effect.fnUntraced(function*(
  sources: ReadonlyArray<Settings.Source>
): Effect.fn.Return<Layer.Layer<Authorizer, ConfigError> | undefined, ConfigError> {
  const { values, given } = yield* Effect.fromResult(Settings.decode(sources))
  const path = values.aclFile
  if (path === undefined) return undefined
  const shown = given.aclFile?.shown ?? path
  return AclAuthorizer.layer(path).pipe(
    Layer.catchTag("AclFileError", (error) =>
      Layer.effect(
        Authorizer,
        Effect.fail(
          new ConfigError({
            keys: ["aclFile"],
            message: `${shown}: ${error.line === undefined ? "" : `line ${error.line}: `}${error.detail}`
          })
        )
      )
    )
  )
})

/** Where sessions and retained messages live, from the `persistence`, `persistenceFile` and `redisUrl` keys. */
export type Persistence =
  | { readonly _tag: "memory" }
  | { readonly _tag: "sqlite"; readonly file: string }
  | { readonly _tag: "redis"; readonly url: string }

/** The persistence the sources describe (`Settings.decode` has checked that sqlite comes with its file, redis with its URL). */
export const persistence = Effect.fnUntraced(function*(
  sources: ReadonlyArray<Settings.Source>
): Effect.fn.Return<Persistence, ConfigError> {
  const { values } = yield* Effect.fromResult(Settings.decode(sources))
  if (values.persistence === "sqlite" && values.persistenceFile !== undefined) return { _tag: "sqlite", file: values.persistenceFile }
  if (values.persistence === "redis" && values.redisUrl !== undefined) return { _tag: "redis", url: values.redisUrl }
  return { _tag: "memory" }
})

/** How many broker processes to run (`--workers`; more than one only with Redis, checked by `Settings.decode`). */
export const workers = (sources: ReadonlyArray<Settings.Source>): Effect.Effect<number, ConfigError> =>
  Effect.map(Effect.fromResult(Settings.decode(sources)), ({ values }) => values.workers)

/** Whether `host` only listens on this machine (loopback), where open access reaches nobody else. */
export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
