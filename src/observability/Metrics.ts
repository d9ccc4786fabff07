/**
 * The broker's metrics as Effect `Metric`s, so Effect's own exporters (`PrometheusMetrics`,
 * `OtlpMetrics`) report them. The values are not pushed with `Metric.update` on the message path:
 * each series is registered with `Metric.registerUnsafe` over a getter of the broker's plain
 * counters (`Stats`) and live sizes (`BrokerProbe`), read only when an exporter snapshots.
 * Registered in the registry of the current context (Effect's default one unless the embedding
 * app provides its own `Metric.MetricRegistry`), removed when the broker's scope closes.
 */
import { Clock, type Context, Effect, Metric } from "effect"
import type { BrokerProbe } from "./BrokerProbe.ts"
import { REFUSAL_REASONS } from "./Stats.ts"

/** One row of the metrics table (README "Metrics"): name, type, what it counts. */
export interface MetricRow {
  readonly name: string
  readonly type: "counter" | "gauge" | "histogram"
  readonly description: string
}

type Series =
  | { readonly type: "counter"; readonly read: () => number; readonly attributes?: Record<string, string> }
  | { readonly type: "gauge"; readonly read: () => number }
  | { readonly type: "histogram"; readonly read: () => Metric.HistogramState }

/** Every series of a broker's metrics, with their names and descriptions; `now` is the broker's clock (epoch ms). */
const series = (probe: BrokerProbe, now: () => number): ReadonlyArray<MetricRow & Series> => {
  const { stats } = probe
  const counter = (name: string, description: string, read: () => number, attributes?: Record<string, string>) =>
    ({ name, type: "counter" as const, description, read, ...(attributes === undefined ? {} : { attributes }) })
  const gauge = (name: string, description: string, read: () => number) => ({ name, type: "gauge" as const, description, read })
  return [
    counter("mqtt_messages_received_total", "PUBLISH packets received from clients", () => stats.publishReceived),
    counter("mqtt_messages_sent_total", "PUBLISH packets sent to clients", () => stats.publishSent),
    counter("mqtt_messages_dropped_total", "QoS 0 messages dropped by the slow-consumer policy (outbox over --max-outbox-bytes)", probe.dropped),
    counter("mqtt_packets_received_total", "MQTT packets received from clients, any type", () => stats.packetsReceived),
    counter("mqtt_packets_sent_total", "MQTT packets sent to clients, any type", () => stats.packetsSent),
    counter("mqtt_bytes_received_total", "bytes read from client sockets", () => stats.bytesReceived),
    counter("mqtt_bytes_sent_total", "bytes written to client sockets", () => stats.bytesSent),
    counter("mqtt_publish_bytes_received_total", "payload bytes of the PUBLISH packets received", () => stats.publishBytesReceived),
    counter("mqtt_publish_bytes_sent_total", "payload bytes of the PUBLISH packets sent", () => stats.publishBytesSent),
    counter("mqtt_sockets_accepted_total", "sockets accepted by the MQTT listeners", () => stats.socketsAccepted),
    counter("mqtt_connections_accepted_total", "CONNECTs accepted", () => stats.connectionsAccepted),
    ...[...REFUSAL_REASONS.values(), "other"].map((reason) =>
      counter("mqtt_connections_refused_total", "CONNECTs refused, by reason (the MQTT 5 reason code's name)", () => stats.refusals.get(reason) ?? 0, { reason })
    ),
    gauge("mqtt_clients_connected", "clients connected now", probe.clientsConnected),
    gauge("mqtt_clients_maximum", "most clients connected at once since the start", () => Math.max(stats.maxConnected, probe.clientsConnected())),
    gauge("mqtt_subscriptions", "subscriptions (client, filter) held by sessions", probe.subscriptions),
    gauge("mqtt_retained_messages", "retained messages", probe.retained),
    gauge("mqtt_sessions", "sessions in the session provider, connected or not (counted at each report)", probe.sessions),
    gauge("mqtt_outbox_bytes", "bytes waiting to be written to clients, over every connection", probe.outboxBytes),
    gauge("mqtt_uptime_seconds", "seconds since the broker started", () => (now() - probe.startedAt) / 1000),
    {
      name: "mqtt_publish_latency_seconds",
      type: "histogram",
      description: "time to route one message to every matching subscriber's outbox or session (one message in 16 is timed)",
      read: () => stats.deliveryLatency.state()
    },
    {
      name: "mqtt_connect_duration_seconds",
      type: "histogram",
      description: "time from a CONNECT's arrival to its CONNACK (accepted or refused)",
      read: () => stats.connectDuration.state()
    }
  ]
}

/** Name, type and description of every metric (one row per name), for documentation and tests. */
export const rows = (probe: BrokerProbe): ReadonlyArray<MetricRow> => {
  const seen = new Map<string, MetricRow>()
  for (const { name, type, description } of series(probe, () => probe.startedAt)) if (!seen.has(name)) seen.set(name, { name, type, description })
  return Array.from(seen.values())
}

const noop = () => {}

/** Registers every series over `probe` in the current metric registry until the scope closes (uptime by Effect's `Clock`). */
export const register = (probe: BrokerProbe) =>
  Effect.acquireRelease(
    Effect.contextWith((context: Context.Context<never>) =>
      Clock.clockWith((clock) => Effect.sync(() =>
        series(probe, () => clock.currentTimeMillisUnsafe()).map((s) => {
          switch (s.type) {
            case "counter": {
              const metric = Metric.counter(s.name, { description: s.description, incremental: true, ...(s.attributes === undefined ? {} : { attributes: s.attributes }) })
              return Metric.registerUnsafe(metric, context, { get: () => ({ count: s.read(), incremental: true }), update: noop, modify: noop })
            }
            case "gauge":
              return Metric.registerUnsafe(Metric.gauge(s.name, { description: s.description }), context, { get: () => ({ value: s.read() }), update: noop, modify: noop })
            case "histogram":
              // the bounds here only name the metric: the state (with its buckets) comes from the getter
              return Metric.registerUnsafe(Metric.histogram(s.name, { description: s.description, boundaries: [] }), context, { get: s.read, update: noop, modify: noop })
          }
        })
      ))
    ),
    (registrations) => Effect.sync(() => registrations.forEach((registration) => registration.remove()))
  )
