/**
 * Starts this broker (Broker.layer + the memory SessionPlugin) on an ephemeral loopback port
 * inside its own ManagedRuntime, and keeps the broker's log lines so tests can check that
 * bad input was logged. Used by the e2e harness.
 */
import { Effect, Layer, Logger, ManagedRuntime } from "effect"
import * as Broker from "../../src/broker/Broker.ts"
import type { BrokerConfig } from "../../src/config/BrokerConfig.ts"
import { SessionPlugin } from "../../src/plugin/SessionPlugin.ts"
import { SessionStateProvider } from "../../src/session/SessionStateProvider.ts"
import type { BoundAddress } from "../../src/transport/Listener.ts"

/** A broker running in a test. */
export interface TestBroker {
  readonly port: number
  readonly url: string
  /** Every listener (TCP first, then TLS / WebSocket when configured). */
  readonly addresses: ReadonlyArray<BoundAddress>
  /** The metrics HTTP endpoint, when `config.metrics` was given. */
  readonly metricsAddress: BoundAddress | undefined
  /** Log lines ("LEVEL message"), oldest first. */
  readonly logs: ReadonlyArray<string>
  /** The session provider the broker runs with, to inspect stored state. */
  readonly provider: SessionStateProvider["Service"]
  readonly stop: () => Promise<void>
}

/**
 * Starts a broker with the given config on 127.0.0.1 and a free port. `services` is provided to
 * the broker besides the session plugin: an `Authenticator` layer, for instance.
 */
export const startTestBroker = async (
  config: Partial<BrokerConfig> = {},
  services?: Layer.Layer<any, unknown>
): Promise<TestBroker> => {
  const logs: Array<string> = []
  const capture = Logger.make<unknown, void>(({ logLevel, message }) => {
    const text = (Array.isArray(message) ? message : [message]).map((part) =>
      typeof part === "string" ? part : String(part)
    ).join(" ")
    logs.push(`${logLevel.toUpperCase()} ${text}`)
  })
  const layer = Broker.layer({ host: "127.0.0.1", port: 0, ...config }).pipe(
    Layer.provideMerge(SessionPlugin.layer),
    (broker) => services === undefined ? broker : Layer.provide(broker, services),
    Layer.provide(Logger.layer([capture]))
  )
  const runtime = ManagedRuntime.make(layer)
  const [broker, provider] = await runtime.runPromise(Effect.all([Broker.Broker, SessionStateProvider]))
  return {
    port: broker.address.port,
    url: `mqtt://127.0.0.1:${broker.address.port}`,
    addresses: broker.addresses,
    metricsAddress: broker.metricsAddress,
    logs,
    provider,
    stop: () => runtime.dispose()
  }
}
