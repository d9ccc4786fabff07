import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Option } from "effect"
import { HttpRouter } from "effect/http"
import * as BrokerProbe from "../../src/observability/BrokerProbe.ts"
import * as MetricsServer from "../../src/observability/MetricsServer.ts"
import { Stats } from "../../src/observability/Stats.ts"
import type { SessionStateProvider } from "../../src/session/SessionStateProvider.ts"

/** A provider whose lookups take as long as `lookup` (Effect.never: they never answer). */
const provider = (lookup: Effect.Effect<void>): SessionStateProvider["Service"] => ({
  get: () => Effect.as(lookup, Option.none()),
  store: () => Effect.void,
  remove: () => Effect.void,
  modify: () => Effect.die("not used"),
  clientIds: Effect.succeed(["a", "b"])
} as unknown as SessionStateProvider["Service"])

const probe = (listening: boolean, lookup: Effect.Effect<void>) =>
  BrokerProbe.make({
    stats: new Stats(),
    startedAt: Date.now(),
    clientsConnected: () => 0,
    subscriptions: () => 0,
    retained: () => 0,
    outboxBytes: () => 0,
    dropped: () => 0,
    listening: () => listening
  }, provider(lookup))

const get = async (target: BrokerProbe.BrokerProbe, path: string): Promise<[number, string]> => {
  const { dispose, handler } = HttpRouter.toWebHandler(MetricsServer.routes(target), { disableLogger: true })
  try {
    // the routes need nothing from the request's context; addAll's typing says "any"
    const response = await handler(new Request(`http://localhost${path}`), Context.empty() as never)
    return [response.status, await response.text()]
  } finally {
    await dispose()
  }
}

describe("MetricsServer routes", () => {
  it("/ready is 503 while the listeners are not bound, even with the provider answering", async () => {
    expect(await get(probe(false, Effect.void), "/ready")).toEqual([503, "listeners not bound\n"])
  })

  it("/ready is 503 when the session provider does not answer within a second, 200 when it does", async () => {
    expect(await get(probe(true, Effect.never), "/ready")).toEqual([503, "session provider not answering\n"])
    expect(await get(probe(true, Effect.sleep(10)), "/ready")).toEqual([200, "ready\n"])
  })

  it("/health is 200 whatever the listeners and the provider do", async () => {
    expect(await get(probe(false, Effect.never), "/health")).toEqual([200, "ok\n"])
  })
})
