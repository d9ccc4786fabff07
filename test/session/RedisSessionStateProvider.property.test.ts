/**
 * The provider-generic conformance suite over the Redis provider, against a real redis-server
 * started for this file on a free port (`test/support/RedisServer.ts`; the file fails when there
 * is none). Each build of the Layer is a fresh provider: its own client and its own key prefix.
 * Every step of a scenario is two round trips and a decode of the whole session, so by default it
 * runs 4 scenarios per property (about 4 s; the SQLite suite runs 10, the memory one 200 over the
 * same properties); `PROPS_RUNS` sets it, e.g. `PROPS_RUNS=200` for a long run.
 */
import { Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import * as RedisSessionStateProvider from "../../src/session/providers/RedisSessionStateProvider.ts"
import type { SessionStateProvider } from "../../src/session/SessionStateProvider.ts"
import * as RedisServer from "../support/RedisServer.ts"

process.env["PROPS_RUNS"] ??= "4"
// imported after PROPS_RUNS is set: Props.ts reads it when it loads
const { providerConformance } = await import("./SessionModel.ts")

const redisUrl = RedisServer.useRedisServer()

/** A provider with its own client and key prefix on the test server. */
const fresh: Layer.Layer<SessionStateProvider> = Layer.unwrap(
  Effect.sync(() => {
    return RedisSessionStateProvider.layer({ url: redisUrl(), prefix: `test:${randomUUID()}:` })
  })
).pipe(Layer.orDie)

providerConformance("Redis", fresh)
