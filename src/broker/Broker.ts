/**
 * The broker as a service: `Broker.layer(config)` starts the listeners in the Layer's scope
 * over whichever `SessionStateProvider` is provided (`SessionPlugin.layer` for the memory
 * default) and stops them, closing every connection, when the scope closes.
 */
import { Clock, Context, Effect, Layer, Option } from "effect"
import * as Authenticator from "../auth/Authenticator.ts"
import * as Authorizer from "../auth/Authorizer.ts"
import * as AuthFailureGate from "../auth/AuthFailureGate.ts"
import { ConnectRate } from "../auth/ConnectRate.ts"
import { Cluster, type ClusterError, layerSingle as singleNode } from "../cluster/Cluster.ts"
import * as BrokerConfig from "../config/BrokerConfig.ts"
import * as HeapTrim from "../memory/HeapTrim.ts"
import * as BrokerProbe from "../observability/BrokerProbe.ts"
import * as Metrics from "../observability/Metrics.ts"
import { Stats } from "../observability/Stats.ts"
import * as SysPublisher from "../observability/SysPublisher.ts"
import * as Plugin from "../plugin/Plugin.ts"
import { SessionPlugin } from "../plugin/SessionPlugin.ts"
import { Router } from "../routing/Router.ts"
import type { Message } from "../session/Message.ts"
import { RetainedMessageStore } from "../session/providers/RetainedMessageStore.ts"
import { nextDeadline } from "../session/SessionState.ts"
import { SessionStateProvider, type SessionStoreError } from "../session/SessionStateProvider.ts"
import * as Sessions from "../session/Sessions.ts"
import type { BoundAddress } from "../transport/Listener.ts"
import type { ListenerError } from "../transport/ListenerError.ts"
import * as TcpListener from "../transport/TcpListener.ts"
import * as TlsListener from "../transport/TlsListener.ts"
import * as WebSocketListener from "../transport/WebSocketListener.ts"
import * as Connection from "./Connection.ts"
import { ConnectionRegistry } from "./ConnectionRegistry.ts"
import type { Core } from "./Core.ts"
import * as Delivery from "./Delivery.ts"
import * as Handover from "./Handover.ts"
import { KeyedLock } from "./KeyedLock.ts"
import { ReceiveBudget } from "./ReceiveBudget.ts"
import { UploadPacer } from "./UploadPacer.ts"
import { SessionExpiry } from "./SessionExpiry.ts"
import { Watchdog } from "./Watchdog.ts"

/** How often connect timeouts and keepalives are checked; deadlines are honoured within this. */
const WATCHDOG_INTERVAL_MS = 250
/** How often offline sessions are checked for expiry and delayed wills. */
const EXPIRY_INTERVAL_MS = 250

/** A running broker. */
export class Broker extends Context.Service<Broker, {
  readonly config: BrokerConfig.BrokerConfig
  /** The first listener's address, TCP unless `listeners` says otherwise (its real port when configured with port 0). */
  readonly address: BoundAddress
  /** Every listener's address. */
  readonly addresses: ReadonlyArray<BoundAddress>
  /** The metrics HTTP endpoint's address (`/metrics`, `/health`, `/ready`), when `config.metrics` is set. */
  readonly metricsAddress: BoundAddress | undefined
  /** Number of connected clients. */
  readonly connectedClients: Effect.Effect<number>
  /** QoS 0 messages dropped by the slow-consumer policy since the broker started (README "Slow consumers"). */
  readonly droppedMessages: Effect.Effect<number>
  /** Publishes a message from the application itself, as if a client had. */
  readonly publish: (message: Message) => Effect.Effect<void, SessionStoreError>
}>()("effect-mqtt-broker/broker/Broker") {}

/** Puts the subscriptions of sessions already in the provider back into the router. */
/** Routes stored sessions here, offline (their subscriptions in the router, their expiry watched). */
const routeStored = Effect.fnUntraced(function*(core: Core, clientIds: ReadonlyArray<string>) {
  const provider = yield* SessionStateProvider
  const now = yield* Clock.currentTimeMillis
  for (const clientId of clientIds) {
    const stored = yield* provider.get(clientId)
    if (Option.isNone(stored)) continue
    for (const [filter, subscription] of stored.value.subscriptions) core.router.subscriptions.add(clientId, filter, subscription)
    core.expiry.schedule(clientId, nextDeadline(stored.value.disconnectedAt === undefined ? { ...stored.value, disconnectedAt: now } : stored.value))
  }
})

/** At start every stored session is offline: all of them routed here; says which they are. */
const restoreRouter = Effect.fnUntraced(function*(core: Core) {
  const clientIds = yield* (yield* SessionStateProvider).clientIds
  yield* routeStored(core, clientIds)
  return clientIds
})

/** With a durable retained store (a persistent provider's Layer): its messages back in the router, later changes written through. */
const restoreRetained = Effect.fnUntraced(function*(core: Core) {
  const store = yield* Effect.serviceOption(RetainedMessageStore)
  if (Option.isNone(store)) return
  for (const message of store.value.stored) core.router.retained.set(message.topic, message)
  core.router.retained.writeThrough(store.value)
})

/** Waits until every session change made so far is durable (at once over a provider that stores each before returning). */
const durable = (core: Core): Effect.Effect<void> => Effect.callback<void>((resume) => core.sessions.whenDurable(() => resume(Effect.void)))

/** The shared subscriptions a forwarded message asks this node to serve, when it asks none. */
const noShared: ReadonlySet<string> = new Set()

/** Starts a broker in the current scope. */
export const make = Effect.fnUntraced(function*(overrides: Partial<BrokerConfig.BrokerConfig> = {}) {
  const config = BrokerConfig.make(overrides)
  const startedAt = yield* Clock.currentTimeMillis
  const sessions = yield* Sessions.make({ maxQueuedMessages: config.maxQueuedMessages, queueQos0: config.queueQos0 })
  // no Authenticator provided: everyone may connect, as before there was one
  const authenticator = Option.getOrElse(yield* Effect.serviceOption(Authenticator.Authenticator), () => Authenticator.allowAll)
  const router = new Router()
  // with a cluster: this node's filters go to Redis from here on, the peers' and the retained messages come from it
  const cluster = yield* Option.match(yield* Effect.serviceOption(Cluster), {
    onNone: () => Effect.succeed(undefined),
    onSome: (service) => service.join(router)
  })
  const authFailures = config.maxAuthFailuresPerSecond > 0 ? new ConnectRate(config.maxAuthFailuresPerSecond) : undefined
  const core: Core = {
    config,
    sessions,
    router,
    registry: new ConnectionRegistry(),
    locks: new KeyedLock(),
    watchdog: new Watchdog(),
    expiry: new SessionExpiry(),
    receiving: new ReceiveBudget(config.maxReceivingBytes),
    pacer: new UploadPacer(),
    authenticator,
    // no Authorizer (or the explicit allow-all one): `undefined`, so no call per message
    authorizer: Option.filter(yield* Effect.serviceOption(Authorizer.Authorizer), (a) => a !== Authorizer.allowAll)
      .pipe(Option.getOrUndefined),
    connectRate: config.maxConnectsPerSecond > 0 ? new ConnectRate(config.maxConnectsPerSecond) : undefined,
    authFailures,
    admit: yield* admission(authFailures, config.maxAuthFailuresPerSecond),
    stats: new Stats(),
    cluster
  }
  // in a cluster, the stored sessions are restored by the first node only: two nodes holding one
  // offline session's subscriptions would each queue every message for it
  const restored = cluster === undefined || cluster.peersAtStart === 0 ? yield* restoreRouter(core) : undefined
  if (restored === undefined) yield* Effect.logInfo("cluster: other nodes are alive, so the stored sessions' subscriptions stay with them")
  yield* restoreRetained(core)
  if (cluster !== undefined) {
    const provider = yield* SessionStateProvider
    yield* cluster.serve({
      deliver: (forwarded, only) =>
        Delivery.publishForwarded(
          core,
          forwarded.message,
          forwarded.publisherId,
          // most forwarded messages serve no shared subscription: no Set for them
          forwarded.shared.length === 0 ? noShared : new Set(forwarded.shared),
          only
        ),
      durable: durable(core),
      letGo: (clientId, beforeDrop) => Handover.letGo(core, clientId, beforeDrop),
      deliverTo: (clientId, message) =>
        Effect.gen(function*() {
          const authorizer = core.authorizer
          if (authorizer !== undefined && !(yield* Delivery.mayReceive(core, authorizer, clientId, message.topic))) return
          yield* Delivery.deliverTo(core, clientId, message)
        }),
      adopt: (clientIds) =>
        routeStored(core, clientIds).pipe(
          Effect.provideService(SessionStateProvider, provider),
          Effect.catch((error) => Effect.logWarning(`cluster: routing adopted sessions: ${error.message}`))
        )
    })
    if (restored !== undefined) yield* cluster.restored(restored)
  }

  const plugin = yield* Effect.serviceOption(SessionPlugin)
  yield* Option.match(plugin, {
    onNone: () => Effect.logInfo("session state: a SessionStateProvider without a plugin descriptor"),
    onSome: (descriptor) => Effect.logInfo(`plugin loaded: ${Plugin.describe(descriptor)}`)
  })

  // registered before the listeners so it runs after them: every connection's last line comes first
  yield* Effect.addFinalizer(() => Effect.logInfo("broker stopped"))
  yield* Effect.forkScoped(core.watchdog.run(WATCHDOG_INTERVAL_MS))
  yield* Effect.forkScoped(core.expiry.run({ ...core, publishWill: (will, clientId) => Delivery.publish(core, will, clientId) }, EXPIRY_INTERVAL_MS))
  // observability: sizes are read when a report is made, counts come from core.stats
  let listening = false
  const probe = BrokerProbe.make({
    stats: core.stats,
    startedAt,
    clientsConnected: () => core.registry.size,
    subscriptions: () => core.router.subscriptions.size,
    retained: () => core.router.retained.size,
    outboxBytes: () => {
      let bytes = 0
      for (const live of core.registry.values()) bytes += live.outboxBytes()
      return bytes
    },
    dropped: () => core.registry.flow.dropped,
    listening: () => listening
  }, yield* SessionStateProvider)
  yield* Metrics.register(probe)
  // before the MQTT listeners, so /health answers (and /ready says 503) while they start. The HTTP
  // server and the OTLP exporter are loaded only when configured: importing them costs ~50 ms of CPU
  const metrics = config.metrics
  // filled as the MQTT listeners bind, below; the live page asks it for the WebSocket port
  const addresses: Array<BoundAddress> = []
  const metricsAddress = metrics === undefined
    ? undefined
    : yield* Effect.flatMap(
      Effect.promise(() => import("../observability/MetricsServer.ts")),
      (server) => server.serve(metrics, probe, { webSocketPort: () => addresses.find((address) => address.transport === "ws")?.port })
    )
  const otlp = config.otlp
  if (otlp !== undefined) {
    const exporter = yield* Effect.promise(() => import("../observability/OtlpExport.ts"))
    yield* exporter.start(otlp)
    yield* Effect.logInfo(`exporting metrics to ${exporter.metricsUrl(otlp.endpoint)} every ${otlp.exportIntervalMs} ms`)
  }

  const handler = Connection.serve(core)
  for (const listener of BrokerConfig.listenersOf(config)) {
    addresses.push(
      yield* listener.transport === "tcp"
        ? TcpListener.listen(listener, handler, core.admit)
        : listener.transport === "tls"
        ? TlsListener.listen(listener, handler, core.admit)
        : WebSocketListener.listen(listener, handler)
    )
  }
  for (const address of addresses) yield* Effect.logInfo(`listening on ${address.transport}://${address.host}:${address.port}`)
  if (metricsAddress !== undefined) {
    yield* Effect.logInfo(`metrics on http://${metricsAddress.host}:${metricsAddress.port}/metrics (also /health, /ready)`)
  }
  listening = true
  // registered after the listeners, so it runs before they close: /ready says 503 during shutdown
  yield* Effect.addFinalizer(() => Effect.sync(() => {
    listening = false
  }))
  if (config.memoryTrim) yield* Effect.forkScoped(HeapTrim.run())
  if (config.sysInterval > 0) {
    yield* Effect.forkScoped(SysPublisher.run(probe, (message) => Delivery.publish(core, message), config.sysInterval))
  }

  return Broker.of({
    config,
    address: addresses[0]!,
    addresses,
    metricsAddress,
    connectedClients: Effect.sync(() => core.registry.size),
    droppedMessages: Effect.sync(() => core.registry.flow.dropped),
    publish: (message) => Delivery.publish(core, message)
  })
})

/**
 * `--max-auth-failure-rate`'s shut-out as a synchronous check of an address, logging through this
 * broker's logger: asked by the TCP and TLS listeners as Node accepts a connection, and when a
 * WebSocket connection is served (see `Peer`).
 */
const admission = (failures: ConnectRate | undefined, limit: number) =>
  Effect.gen(function*() {
    if (failures === undefined) return undefined
    const clock = yield* Clock.Clock
    const context = yield* Effect.context<never>()
    return AuthFailureGate.gate(
      failures,
      limit,
      () => clock.currentTimeMillisUnsafe(),
      (line) => Effect.runForkWith(context)(Effect.logWarning(line))
    )
  })

/**
 * The broker as a Layer; needs a `SessionStateProvider` (e.g. `SessionPlugin.layer`). A listener
 * that cannot start fails it with a `ListenerError`, and the listeners already started are closed
 * with the Layer's scope: nothing stays half-started. With `config.cluster`, it joins the other
 * brokers on that Redis server (`ClusterRedis`, loaded only then); without, it is on its own.
 */
export const layer = (
  config: Partial<BrokerConfig.BrokerConfig> = {}
): Layer.Layer<Broker, ListenerError | SessionStoreError | ClusterError, SessionStateProvider> => {
  const cluster = config.cluster
  return Layer.effect(Broker, make(config)).pipe(Layer.provide(
    cluster === undefined
      ? singleNode
      : Layer.unwrap(Effect.map(
        Effect.promise(() => import("../cluster/ClusterRedis.ts")),
        (redis) => redis.layer({ url: cluster.url, heartbeatMs: cluster.heartbeatMs })
      ))
  ))
}
