/**
 * The HTTP endpoint for operators (`--metrics-port`): the live page at `/` (`src/dashboard`),
 * Prometheus text at `/metrics` (Effect's
 * `PrometheusMetrics` formatter over the broker's registered metrics), `/health` (200 while the
 * process serves requests) and `/ready` (200 once the MQTT listeners are bound and the session
 * provider answers, 503 otherwise). Served by `@effect/platform-node`'s `NodeHttpServer` with
 * Effect's `HttpRouter`, in the broker's scope.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import * as Dashboard from "../dashboard/Dashboard.ts"
import type { DashboardSettings } from "../dashboard/Dashboard.ts"
import { fromCause, type ListenerError } from "../transport/ListenerError.ts"
import type { BoundAddress } from "../transport/Listener.ts"
import type { BrokerProbe } from "./BrokerProbe.ts"

/** Where the endpoint listens. */
export interface MetricsEndpoint {
  readonly port: number
  readonly host: string
}

/** Prometheus' text exposition format, version 0.0.4 (what `PrometheusMetrics.layerHttp` answers with too). */
const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

/** The routes over `probe`. */
export const routes = (probe: BrokerProbe) =>
  HttpRouter.addAll([
    // as PrometheusMetrics.layerHttp, after counting the sessions: the provider is asked, not a counter
    HttpRouter.route(
      "GET",
      "/metrics",
      Effect.gen(function*() {
        yield* probe.countSessions
        return HttpServerResponse.text(yield* PrometheusMetrics.format(), { contentType: PROMETHEUS_CONTENT_TYPE })
      })
    ),
    HttpRouter.route("GET", "/health", HttpServerResponse.text("ok\n")),
    HttpRouter.route(
      "GET",
      "/ready",
      Effect.gen(function*() {
        if (!probe.listening()) return HttpServerResponse.text("listeners not bound\n", { status: 503 })
        if (!(yield* probe.providerAnswers)) return HttpServerResponse.text("session provider not answering\n", { status: 503 })
        return HttpServerResponse.text("ready\n")
      })
    )
  ])

/**
 * Serves the endpoint in the current scope until it closes; returns where it listens. A port that
 * cannot be bound is a `ListenerError` (transport "http"), as for the MQTT listeners.
 */
export const serve = Effect.fnUntraced(function*(endpoint: MetricsEndpoint, probe: BrokerProbe, dashboard: DashboardSettings) {
  const named = { transport: "http", host: endpoint.host, port: endpoint.port } as const
  const server = yield* NodeHttpServer.make(() => createServer(), {
    port: endpoint.port,
    host: endpoint.host,
    // a scrape in flight may finish; keep-alive connections do not hold the shutdown up
    gracefulShutdownTimeout: "1 second"
  }).pipe(
    Effect.mapError((error): ListenerError => fromCause(named, error.cause)),
    Effect.catchDefect((defect) => Effect.fail(fromCause(named, defect)))
  )
  // the live page at `/` beside the operator's endpoints (src/dashboard)
  yield* server.serve(yield* HttpRouter.toHttpEffect(Layer.mergeAll(routes(probe), Dashboard.routes(dashboard))))
  const address = server.address
  const bound: BoundAddress = address._tag === "UnixPathAddress"
    ? { transport: "http", host: address.path, port: 0 }
    : { transport: "http", host: String(address.address), port: address.port }
  return bound
})
