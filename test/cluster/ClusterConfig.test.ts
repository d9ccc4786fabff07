/** `--cluster` and `--cluster-heartbeat-ms`: a cluster needs Redis persistence and meets on its URL. */
import { describe, expect, it } from "@effect/vitest"
import { loadConfig } from "../support/LoadConfig.ts"

describe("Settings: cluster", () => {
  it("off by default; on with redis persistence, its URL and the heartbeat (default 1000 ms) from flags or environment", () => {
    const off = loadConfig({})
    expect(typeof off === "string" ? off : off.cluster).toBeUndefined()
    const on = loadConfig({ persistence: "redis", redisUrl: "redis://10.0.0.5:6379", cluster: true })
    expect(typeof on === "string" ? on : on.cluster).toEqual({ url: "redis://10.0.0.5:6379", heartbeatMs: 1000 })
    const env = loadConfig({}, { MQTT_PERSISTENCE: "redis", MQTT_REDIS_URL: "redis://r:6379", MQTT_CLUSTER: "yes", MQTT_CLUSTER_HEARTBEAT_MS: "250" })
    expect(typeof env === "string" ? env : env.cluster).toEqual({ url: "redis://r:6379", heartbeatMs: 250 })
  })

  it("--cluster without --persistence redis is refused in one line naming both keys", () => {
    expect(loadConfig({ cluster: true })).toBe(
      "--cluster needs --persistence (MQTT_PERSISTENCE) redis: the nodes meet in the Redis server that keeps their sessions"
    )
    expect(loadConfig({ persistence: "sqlite", persistenceFile: "s.db" }, { MQTT_CLUSTER: "on" })).toMatch(/^MQTT_CLUSTER needs --persistence/)
  })

  it("a heartbeat below 50 ms is refused; one without --cluster is left unused (--print-config writes every key)", () => {
    const unused = loadConfig({ persistence: "redis", redisUrl: "redis://r:6379", clusterHeartbeatMs: "500" })
    expect(typeof unused === "string" ? unused : unused.cluster).toBeUndefined()
    expect(loadConfig({ persistence: "redis", redisUrl: "redis://r:6379", cluster: true, clusterHeartbeatMs: "10" })).toMatch(
      /^--cluster-heartbeat-ms 10 is not a number of milliseconds \(50-/
    )
  })
})
