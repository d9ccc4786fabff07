/**
 * The observability room end to end: a real broker on ephemeral ports, real mqtt.js clients,
 * real HTTP (fetch against /metrics, /health, /ready; an in-test OTLP receiver), and Debian's
 * mosquitto_sub when it is installed.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { execFile, spawnSync } from "node:child_process"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import mqtt, { type MqttClient } from "mqtt"
import type { BrokerConfig } from "../../src/config/BrokerConfig.ts"
import { startTestBroker, type TestBroker } from "../support/TestBroker.ts"

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => {})
})

const start = async (config: Partial<BrokerConfig>): Promise<TestBroker> => {
  const broker = await startTestBroker(config)
  cleanups.push(broker.stop)
  return broker
}

const connect = async (broker: TestBroker, clientId: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> => {
  const client = await mqtt.connectAsync(broker.url, { clientId, reconnectPeriod: 0, ...options })
  cleanups.push(() => client.endAsync(true))
  return client
}

/** Polls `check` until it returns a value (not undefined) or `ms` pass. */
const eventually = async <A>(check: () => A | undefined | Promise<A | undefined>, ms = 8000, what = "condition"): Promise<A> => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const value = await check()
    if (value !== undefined) return value
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** The value of one Prometheus sample line (`name{labels} value`), or undefined when absent. */
const sample = (text: string, series: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

const metricsUrl = (broker: TestBroker, path: string) => `http://127.0.0.1:${broker.metricsAddress!.port}${path}`

describe("$SYS tree", () => {
  it("a $SYS/# subscriber gets the broker's topics with values that follow the traffic; a # subscriber gets none", async () => {
    const broker = await start({ sysInterval: 1 })
    const everything = await connect(broker, "all")
    const all: Array<string> = []
    everything.on("message", (topic) => all.push(topic))
    await everything.subscribeAsync("#", { qos: 0 })
    const sys = await connect(broker, "sys")
    const tree = new Map<string, string>()
    sys.on("message", (topic, payload) => tree.set(topic, payload.toString()))
    await sys.subscribeAsync("$SYS/#", { qos: 0 })

    const publisher = await connect(broker, "pub")
    for (let i = 0; i < 10; i++) await publisher.publishAsync("plain/x", `m${i}`, { qos: 1 })
    await eventually(() => (all.filter((t) => t === "plain/x").length === 10 ? true : undefined), 5000, "the # subscriber's 10 messages")

    // the next round after the traffic reports it
    await eventually(() => Number(tree.get("$SYS/broker/publish/messages/received") ?? 0) >= 10 ? true : undefined, 5000, "$SYS publish/messages/received ≥ 10")
    expect(tree.get("$SYS/broker/version")).toMatch(/^effect-mqtt-broker version \d+\.\d+\.\d+$/)
    expect(tree.get("$SYS/broker/uptime")).toMatch(/^\d+ seconds$/)
    expect(Number(tree.get("$SYS/broker/clients/connected"))).toBe(3)
    expect(Number(tree.get("$SYS/broker/clients/maximum"))).toBeGreaterThanOrEqual(3)
    expect(Number(tree.get("$SYS/broker/subscriptions/count"))).toBe(2)
    // the # subscriber received the 10 messages (and $SYS publishes reached the $SYS/# subscriber)
    expect(Number(tree.get("$SYS/broker/publish/messages/sent"))).toBeGreaterThanOrEqual(10)
    expect(Number(tree.get("$SYS/broker/bytes/received"))).toBeGreaterThan(10 * "plain/x".length)
    expect(Number(tree.get("$SYS/broker/retained messages/count"))).toBeGreaterThan(40)
    expect(tree.get("$SYS/broker/load/publish/received/1min")).toMatch(/^\d+\.\d\d$/)
    expect(Number(tree.get("$SYS/broker/load/publish/received/1min"))).toBeGreaterThan(0)
    expect(Number(tree.get("$SYS/broker/load/connections/15min"))).toBeGreaterThan(0)

    // $SYS messages went out every round, yet # matched none of them [MQTT-4.7.2-1]
    expect(all.filter((topic) => topic.startsWith("$"))).toEqual([])
    const plus = await connect(broker, "plus")
    const plusTopics: Array<string> = []
    plus.on("message", (topic) => plusTopics.push(topic))
    await plus.subscribeAsync(["+/broker/#", "+/+/uptime"], { qos: 0 })
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(plusTopics).toEqual([])
  })

  it("--sys-interval 0: no $SYS topic at all", async () => {
    const broker = await start({ sysInterval: 0 })
    const sys = await connect(broker, "sys")
    const topics: Array<string> = []
    sys.on("message", (topic) => topics.push(topic))
    await sys.subscribeAsync("$SYS/#", { qos: 0 })
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(topics).toEqual([])
  })

  it.skipIf(spawnSync("sh", ["-c", "command -v mosquitto_sub"]).status !== 0)(
    "Debian's mosquitto_sub -t '$SYS/#' -v -C 5 reads the tree from our broker",
    async () => {
      const broker = await start({ sysInterval: 1 })
      const output = await new Promise<string>((resolve, reject) =>
        execFile("mosquitto_sub", ["-h", "127.0.0.1", "-p", String(broker.port), "-t", "$SYS/#", "-v", "-C", "5", "-W", "10"], (error, stdout) =>
          error === null ? resolve(stdout) : reject(error))
      )
      const lines = output.trim().split("\n")
      expect(lines).toHaveLength(5)
      for (const line of lines) expect(line).toMatch(/^\$SYS\/broker\/\S.* \S+/)
      expect(lines.some((line) => line.startsWith("$SYS/broker/version effect-mqtt-broker version "))).toBe(true)
    }
  )
})

describe("metrics endpoint", () => {
  it("/metrics shows the message counters and latency histogram after traffic; /health and /ready answer 200", async () => {
    const broker = await start({ sysInterval: 0, metrics: { port: 0, host: "127.0.0.1" } })
    expect(broker.metricsAddress).toMatchObject({ transport: "http", host: "127.0.0.1" })
    const subscriber = await connect(broker, "sub")
    await subscriber.subscribeAsync("m/#", { qos: 1 })
    let received = 0
    subscriber.on("message", () => received++)
    const publisher = await connect(broker, "pub")
    for (let i = 0; i < 20; i++) await publisher.publishAsync(`m/${i}`, "payload", { qos: (i % 2) as 0 | 1 })
    await eventually(() => (received === 20 ? true : undefined), 5000, "20 deliveries")
    // an MQTT 5 CONNECT with an authentication method is refused with 0x8C
    await expect(mqtt.connectAsync(broker.url, { clientId: "auth", protocolVersion: 5, reconnectPeriod: 0, properties: { authenticationMethod: "SCRAM" } }))
      .rejects.toThrow()

    const response = await fetch(metricsUrl(broker, "/metrics"))
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toContain("text/plain; version=0.0.4")
    const text = await response.text()
    expect(text).toContain("# TYPE mqtt_messages_received_total counter")
    expect(sample(text, "mqtt_messages_received_total")).toBe(20)
    expect(sample(text, "mqtt_messages_sent_total")).toBe(20)
    expect(sample(text, "mqtt_publish_bytes_received_total")).toBe(20 * "payload".length)
    expect(sample(text, "mqtt_bytes_received_total")).toBeGreaterThan(20 * "payload".length)
    expect(sample(text, "mqtt_connections_accepted_total")).toBe(2)
    expect(sample(text, 'mqtt_connections_refused_total{reason="bad_authentication_method"}')).toBe(1)
    expect(sample(text, "mqtt_clients_connected")).toBe(2)
    expect(sample(text, "mqtt_subscriptions")).toBe(1)
    expect(sample(text, "mqtt_sessions")).toBe(2)
    expect(text).toContain("# TYPE mqtt_publish_latency_seconds histogram")
    // one routed message in 16 is timed, the first included: messages 1 and 17 of the 20
    expect(sample(text, "mqtt_publish_latency_seconds_count")).toBe(2)
    expect(sample(text, 'mqtt_publish_latency_seconds_bucket{le="+Inf"}')).toBe(2)
    expect(sample(text, 'mqtt_publish_latency_seconds_bucket{le="1"}')).toBe(2)
    expect(sample(text, "mqtt_publish_latency_seconds_sum")).toBeGreaterThan(0)
    expect(sample(text, "mqtt_connect_duration_seconds_count")).toBe(3)

    const health = await fetch(metricsUrl(broker, "/health"))
    expect([health.status, await health.text()]).toEqual([200, "ok\n"])
    const ready = await fetch(metricsUrl(broker, "/ready"))
    expect([ready.status, await ready.text()]).toEqual([200, "ready\n"])
    expect((await fetch(metricsUrl(broker, "/nothing"))).status).toBe(404)
  })

  it("a metrics port already in use stops the start with one line naming it", async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    cleanups.push(() => new Promise((resolve) => taken.close(resolve)))
    const port = (taken.address() as AddressInfo).port
    await expect(startTestBroker({ metrics: { port, host: "127.0.0.1" } })).rejects.toThrow(
      `cannot listen on http://127.0.0.1:${port}: address already in use`
    )
  })
})

describe("OTLP export", () => {
  it("posts the broker's metrics as OTLP/HTTP JSON to <endpoint>/v1/metrics", async () => {
    const posts: Array<{ url: string; contentType: string; body: string }> = []
    const receiver: Server = createServer((request, response) => {
      let body = ""
      request.on("data", (chunk) => (body += chunk))
      request.on("end", () => {
        posts.push({ url: request.url ?? "", contentType: String(request.headers["content-type"]), body })
        response.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve))
    cleanups.push(() => new Promise((resolve) => receiver.close(resolve)))
    const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`

    const broker = await start({ sysInterval: 0, otlp: { endpoint, exportIntervalMs: 200 } })
    const publisher = await connect(broker, "pub")
    await publisher.publishAsync("o/x", "1", { qos: 1 })

    type Metric = { name: string; sum?: { dataPoints: Array<{ asDouble?: number }> } }
    const received = (body: string): number | undefined => {
      const metrics: Array<Metric> = JSON.parse(body).resourceMetrics.flatMap((r: { scopeMetrics: Array<{ metrics: Array<Metric> }> }) =>
        r.scopeMetrics.flatMap((s) => s.metrics)
      )
      return metrics.find((m) => m.name === "mqtt_messages_received_total")?.sum?.dataPoints[0]?.asDouble
    }
    const post = await eventually(() => posts.find((p) => (received(p.body) ?? 0) >= 1), 8000, "an OTLP metrics POST counting the message")
    expect(post.url).toBe("/v1/metrics")
    expect(post.contentType).toContain("application/json")
    expect(JSON.parse(post.body).resourceMetrics[0].resource.attributes).toContainEqual({ key: "service.name", value: { stringValue: "effect-mqtt-broker" } })
  })
})
