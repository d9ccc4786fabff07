/**
 * From sources (flags, env) to the `BrokerConfig` the broker starts with: every value decoded
 * and checked (`Settings.decode`), the TLS files read and checked (`TlsFiles.load`). Fails with
 * the first `ConfigError`, before anything listens.
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

/** The broker configuration the sources describe, highest precedence first. */
export const load = Effect.fnUntraced(function*(
  sources: ReadonlyArray<Settings.Source>
): Effect.fn.Return<BrokerConfig.BrokerConfig, ConfigError> {
  const { values, given } = yield* Effect.fromResult(Settings.decode(sources))
  // Settings.decode has checked that the TLS port, key and certificate come together
  const tls = values.tlsPort !== undefined && values.tlsKey !== undefined && values.tlsCert !== undefined
    ? {
      port: values.tlsPort,
      host: values.host,
      ...(yield* TlsFiles.load({ key: values.tlsKey, cert: values.tlsCert }, { key: given.tlsKey, cert: given.tlsCert })),
      // client certificates only when asked for: a plain TLS listener's config stays as it was
      ...(values.tlsCa === undefined ? {} : { ca: yield* TlsFiles.loadCa(values.tlsCa, given.tlsCa) }),
      ...(values.requireCertificate ? { requireCertificate: true } : {}),
      ...(values.useIdentityAsUsername ? { useIdentityAsUsername: true } : {})
    }
    : undefined
  return BrokerConfig.make({
    host: values.host,
    port: values.port,
    tls,
    webSocket: values.wsPort === undefined ? undefined : { port: values.wsPort, host: values.host },
    connectTimeoutMs: values.connectTimeoutMs,
    maxConnections: values.maxConnections,
    maxConnectsPerSecond: values.maxConnectsPerSecond,
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
    topicAliasMaximum: values.topicAliasMaximum
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
    layer: Layer.effect(
      Authenticator,
      PasswordAuthenticator.load(path).pipe(
        Effect.mapError((error) => new ConfigError({ keys: ["passwordFile"], message: `${shown}: ${error.problem}` })),
        Effect.map((entries) => PasswordAuthenticator.make(entries, { allowAnonymous: anonymous }))
      )
    ),
    anonymous
  }
})

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

/** Where sessions and retained messages live, from the `persistence` and `persistenceFile` keys. */
export type Persistence =
  | { readonly _tag: "memory" }
  | { readonly _tag: "sqlite"; readonly file: string }

/** The persistence the sources describe (`Settings.decode` has checked that sqlite comes with its file). */
export const persistence = Effect.fnUntraced(function*(
  sources: ReadonlyArray<Settings.Source>
): Effect.fn.Return<Persistence, ConfigError> {
  const { values } = yield* Effect.fromResult(Settings.decode(sources))
  return values.persistence === "sqlite" && values.persistenceFile !== undefined
    ? { _tag: "sqlite", file: values.persistenceFile }
    : { _tag: "memory" }
})

/** Whether `host` only listens on this machine (loopback), where open access reaches nobody else. */
export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
