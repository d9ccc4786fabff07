/**
 * OTLP/HTTP export of the broker's metrics to an OpenTelemetry collector (`--otlp-endpoint`,
 * `OTEL_EXPORTER_OTLP_ENDPOINT`): Effect's `OtlpMetrics` exporter, JSON-encoded, posted with
 * `fetch` to `<endpoint>/v1/metrics` every `exportIntervalMs`, and once more when the broker stops.
 */
import { Effect, Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpMetrics, OtlpSerialization } from "effect/observability"
import { NAME, VERSION } from "./Version.ts"

/** Where and how often metrics are exported. */
export interface OtlpConfig {
  /** The collector's base URL (OTEL_EXPORTER_OTLP_ENDPOINT), e.g. `http://collector:4318`. */
  readonly endpoint: string
  /** Time between exports (OTEL_METRIC_EXPORT_INTERVAL). */
  readonly exportIntervalMs: number
}

/** How long the last export may take when the broker stops (a collector that is gone must not hold shutdown up). */
const SHUTDOWN_TIMEOUT_MS = 1000

/** The metrics URL of a base endpoint, as the OpenTelemetry spec builds it: `<endpoint>/v1/metrics`. */
export const metricsUrl = (endpoint: string): string => `${endpoint.replace(/\/+$/, "")}/v1/metrics`

/** Exports the current metric registry over OTLP until the scope closes. */
export const start = (config: OtlpConfig) =>
  Layer.build(
    OtlpMetrics.layer({
      url: metricsUrl(config.endpoint),
      resource: { serviceName: NAME, serviceVersion: VERSION },
      exportInterval: config.exportIntervalMs,
      shutdownTimeout: SHUTDOWN_TIMEOUT_MS
    }).pipe(Layer.provide([FetchHttpClient.layer, OtlpSerialization.layerJson]))
  ).pipe(Effect.asVoid)
