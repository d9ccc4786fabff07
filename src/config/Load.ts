/**
 * From sources (flags, env) to the `BrokerConfig` the broker starts with: every value decoded
 * and checked (`Settings.decode`), the TLS files read and checked (`TlsFiles.load`). Fails with
 * the first `ConfigError`, before anything listens.
 */
import { Effect } from "effect"
import * as BrokerConfig from "./BrokerConfig.ts"
import type { ConfigError } from "./ConfigError.ts"
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
      ...(yield* TlsFiles.load({ key: values.tlsKey, cert: values.tlsCert }, { key: given.tlsKey, cert: given.tlsCert }))
    }
    : undefined
  return BrokerConfig.make({
    host: values.host,
    port: values.port,
    tls,
    webSocket: values.wsPort === undefined ? undefined : { port: values.wsPort, host: values.host },
    connectTimeoutMs: values.connectTimeoutMs,
    maxPacketSize: values.maxPacketSize,
    maxReceivingBytes: values.maxReceivingBytes,
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
