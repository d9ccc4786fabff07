import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { readFileSync } from "node:fs"
import * as BrokerProbe from "../../src/observability/BrokerProbe.ts"
import * as Metrics from "../../src/observability/Metrics.ts"
import { Stats } from "../../src/observability/Stats.ts"
import type { SessionStateProvider } from "../../src/session/SessionStateProvider.ts"

const probeOver = (stats: Stats, connected: { n: number }) =>
  BrokerProbe.make({
    stats,
    startedAt: Date.now(),
    clientsConnected: () => connected.n,
    subscriptions: () => 4,
    retained: () => 5,
    outboxBytes: () => 6,
    dropped: () => 7,
    listening: () => true
  }, { clientIds: Effect.succeed([]), get: () => Effect.succeedNone } as unknown as SessionStateProvider["Service"])

describe("Metrics: Effect metrics over the plain counters", () => {
  it.effect("a snapshot reads the counters when it is taken; the series go away with the scope", () =>
    Effect.gen(function*() {
      const stats = new Stats()
      const connected = { n: 1 }
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Metrics.register(probeOver(stats, connected))
        stats.publishReceived += 3
        stats.deliveryLatency.observe(0.0002)
        stats.refuse(0x87)
        connected.n = 2
        const snapshot = yield* Metric.snapshot
        const find = (id: string, reason?: string) =>
          snapshot.find((s) => s.id === id && (reason === undefined || s.attributes?.["reason"] === reason))
        expect(find("mqtt_messages_received_total")).toMatchObject({ type: "Counter", state: { count: 3, incremental: true } })
        expect(find("mqtt_messages_dropped_total")?.state).toMatchObject({ count: 7 })
        expect(find("mqtt_clients_connected")).toMatchObject({ type: "Gauge", state: { value: 2 } })
        expect(find("mqtt_connections_refused_total", "not_authorized")?.state).toMatchObject({ count: 1 })
        expect(find("mqtt_publish_latency_seconds")).toMatchObject({ type: "Histogram", state: { count: 1, sum: 0.0002 } })
        const text = yield* PrometheusMetrics.format()
        expect(text).toContain("mqtt_publish_latency_seconds_bucket{le=\"0.00025\"} 1")
        expect(text).toContain("mqtt_outbox_bytes 6")
      }))
      expect((yield* Metric.snapshot).filter((s) => s.id.startsWith("mqtt_"))).toEqual([])
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

  it("README's metrics table names every metric", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8")
    const table = readme.slice(readme.indexOf("### Metrics (`--metrics-port`)"), readme.indexOf("### OTLP"))
    for (const row of Metrics.rows(probeOver(new Stats(), { n: 0 }))) {
      expect(table, row.name).toContain(`\`${row.name}`)
      expect(table, row.name).toMatch(new RegExp(`${row.name}[^|]*\\| ${row.type} \\|`))
    }
  })
})

describe("OtlpExport", () => {
  it("the metrics URL is <endpoint>/v1/metrics, with or without a trailing slash or a path", async () => {
    const { metricsUrl } = await import("../../src/observability/OtlpExport.ts")
    expect(metricsUrl("http://collector:4318")).toBe("http://collector:4318/v1/metrics")
    expect(metricsUrl("http://collector:4318/")).toBe("http://collector:4318/v1/metrics")
    expect(metricsUrl("https://otlp.example.com/tenant/")).toBe("https://otlp.example.com/tenant/v1/metrics")
  })
})
