/**
 * The live page (`/` on the metrics port): one static HTML page, its script and style, and
 * mqtt.js' browser build, all served by the broker itself — no CDN, no framework. The page
 * connects back over MQTT-over-WebSocket, reads the `$SYS` topics for clients, message rates
 * and drops, and has a topic explorer (subscribe to a filter and watch; publish one message).
 * `config.json` tells it the WebSocket port; without a WebSocket listener it says so.
 */
import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"

/** What the page needs to know about the broker that serves it. */
export interface DashboardSettings {
  /** The WebSocket listener's port, asked per request (it is bound after the page's server); `undefined`: none. */
  readonly webSocketPort: () => number | undefined
}

/** The page's files beside this module (copied into `dist/dashboard/` by the build). */
const PAGE_FILES = [
  ["/", "index.html", "text/html; charset=utf-8"],
  ["/dashboard.js", "dashboard.js", "text/javascript; charset=utf-8"],
  ["/dashboard.css", "dashboard.css", "text/css; charset=utf-8"]
] as const

/** mqtt.js' browser build, from the installed `mqtt` package (its exports map `mqtt/dist/X` to `dist/X.js`). */
const mqttBundle = (): Uint8Array => readFileSync(createRequire(import.meta.url).resolve("mqtt/dist/mqtt.min"))

/** The page's routes. Its files are read once, here: a missing one fails the start, not a request. */
export const routes = (settings: DashboardSettings) => {
  const files = PAGE_FILES.map(([path, file, contentType]) => ({ path, body: readFileSync(new URL(`./${file}`, import.meta.url)), contentType }))
  return HttpRouter.addAll([
    ...files.map(({ body, contentType, path }) => HttpRouter.route("GET", path, HttpServerResponse.uint8Array(body, { contentType }))),
    HttpRouter.route("GET", "/mqtt.min.js", HttpServerResponse.uint8Array(mqttBundle(), { contentType: "text/javascript; charset=utf-8" })),
    HttpRouter.route("GET", "/config.json", Effect.sync(() => HttpServerResponse.jsonUnsafe({ webSocketPort: settings.webSocketPort() })))
  ])
}
