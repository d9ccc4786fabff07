/** `--persistence`, `--persistence-file` and `--redis-url`: sqlite needs its file, redis its URL, and each needs its kind. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as Load from "../../src/config/Load.ts"
import * as Settings from "../../src/config/Settings.ts"
import { loadConfig } from "../support/LoadConfig.ts"

const persistence = (flags: Parameters<typeof Settings.fromFlags>[0], env: Record<string, string> = {}) => {
  const exit = Effect.runSyncExit(Load.persistence([Settings.fromFlags(flags), Settings.fromEnv(env)]))
  return Exit.isSuccess(exit) ? exit.value : undefined
}

describe("Settings: persistence", () => {
  it("memory by default; sqlite with its file from flags or environment", () => {
    expect(persistence({})).toEqual({ _tag: "memory" })
    expect(persistence({ persistence: "sqlite", persistenceFile: "/var/lib/mqtt/sessions.db" })).toEqual({
      _tag: "sqlite",
      file: "/var/lib/mqtt/sessions.db"
    })
    expect(persistence({}, { MQTT_PERSISTENCE: "sqlite", MQTT_PERSISTENCE_FILE: "s.db" })).toEqual({ _tag: "sqlite", file: "s.db" })
  })

  it("--persistence sqlite without a file is refused in one line naming the key", () => {
    expect(loadConfig({ persistence: "sqlite" })).toBe(
      "--persistence sqlite needs --persistence-file (MQTT_PERSISTENCE_FILE): the database file to keep sessions in"
    )
    expect(loadConfig({}, { MQTT_PERSISTENCE: "sqlite" })).toBe(
      "MQTT_PERSISTENCE sqlite needs --persistence-file (MQTT_PERSISTENCE_FILE): the database file to keep sessions in"
    )
  })

  it("a file without --persistence sqlite is refused, not ignored", () => {
    expect(loadConfig({ persistenceFile: "s.db" })).toBe(
      "--persistence-file is set but --persistence (MQTT_PERSISTENCE) is not sqlite: sessions would not be kept in it"
    )
  })

  it("redis with its URL from flags or environment", () => {
    expect(persistence({ persistence: "redis", redisUrl: "redis://10.0.0.5:6379" })).toEqual({ _tag: "redis", url: "redis://10.0.0.5:6379" })
    expect(persistence({}, { MQTT_PERSISTENCE: "redis", MQTT_REDIS_URL: "rediss://r.example:6380/2" })).toEqual({
      _tag: "redis",
      url: "rediss://r.example:6380/2"
    })
  })

  it("--persistence redis without a URL is refused in one line naming the key", () => {
    expect(loadConfig({ persistence: "redis" })).toBe(
      "--persistence redis needs --redis-url (MQTT_REDIS_URL): the Redis server to keep sessions in"
    )
  })

  it("a Redis URL without --persistence redis, or one that is not redis:// or rediss://, is refused", () => {
    expect(loadConfig({ redisUrl: "redis://127.0.0.1:6379" })).toBe(
      "--redis-url is set but --persistence (MQTT_PERSISTENCE) is not redis: sessions would not be kept there"
    )
    expect(loadConfig({ persistence: "redis", redisUrl: "http://127.0.0.1:6379" })).toMatch(/^--redis-url .*redis:\/\/ or rediss:\/\/ URL/)
  })
})
