/**
 * A real `redis-server` for the tests (`bench/lib/redis.ts`, shared with the bench): `start` one,
 * or `useRedisServer` for one per test file. When redis-server cannot be found or does not answer,
 * they fail with a message saying how to install it: the Redis tests fail rather than skip
 * (`.ci/run` installs it).
 */
import { afterAll, beforeAll } from "@effect/vitest"
import { type RedisServer, start } from "../../bench/lib/redis.ts"

export { findRedisServer, type RedisServer, start } from "../../bench/lib/redis.ts"

/**
 * One redis-server for the calling test file: started before its tests, stopped after them.
 * Returns its URL; asking before it started (its start failed) throws, saying so.
 */
export const useRedisServer = (): (() => string) => {
  let server: RedisServer | undefined
  beforeAll(async () => {
    server = await start()
  }, 20_000)
  afterAll(async () => {
    await server?.stop()
  })
  return () => {
    if (server === undefined) throw new Error("redis-server was not started (see the beforeAll failure)")
    return server.url
  }
}
