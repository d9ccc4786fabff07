/**
 * The fuzz suite in CI: a seeded campaign of a few hundred hostile cases against one live broker
 * (with a canary streaming and an innocent client after every case), and a per-class regression:
 * one case of every class, then fresh clients that must be served normally.
 * Long runs: `npm run fuzz -- --cases 20000` (test/fuzz/run.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { startTestBroker, type TestBroker } from "../support/TestBroker.ts"
import { BROKER_CONFIG, type CampaignReport, envFor, runCampaign } from "./Campaign.ts"
import { classes } from "./Classes.ts"
import { innocent } from "./Innocent.ts"
import { probe } from "./Probe.ts"
import { formatCanary, formatDeviation, formatVictim } from "./Report.ts"

const SEED = 20_251_010
const CASES = 300

describe("fuzz campaign (seed 20251010, 300 cases, 12 at a time)", () => {
  let report: CampaignReport
  beforeAll(async () => {
    report = await runCampaign({ cases: CASES, seed: SEED, concurrency: 12 })
  }, 120_000)

  it("no malformed packet of any class keeps a later client from connecting, publishing and subscribing", () => {
    expect(report.innocents, "an innocent client ran after every case").toBe(report.cases)
    expect(report.victims.map(formatVictim), formatCanary(report)).toEqual([])
  })

  it("the canary publishing and subscribing at QoS 1 throughout loses nothing, gets nothing twice, never drops", () => {
    const c = report.canary
    expect(c.sent, "the canary published during the campaign").toBeGreaterThan(0)
    expect({ lost: c.lost, duplicates: c.duplicates, disconnects: c.disconnects }).toEqual({ lost: [], duplicates: 0, disconnects: 0 })
  })

  it("the broker is alive after the campaign: a new client connects, subscribes, publishes and receives", () => {
    expect(report.brokerAlive).toBe(true)
  })

  it("no hostile packet makes the broker log an unhandled error (a defect, not a handled protocol violation)", () => {
    expect(report.brokerErrors).toEqual([])
  })

  it("every hostile packet gets an answer the MQTT spec allows for its class", () => {
    expect(report.cases).toBe(CASES)
    expect(report.deviations.map(formatDeviation)).toEqual([])
  })
})

describe("per-class regression: after one hostile case of each class, fresh clients are served normally", () => {
  let broker: TestBroker
  const env = envFor(BROKER_CONFIG, false)
  beforeAll(async () => {
    broker = await startTestBroker(BROKER_CONFIG)
  })
  afterAll(async () => {
    await broker.stop()
  })

  // ERROR lines the broker logged while each class's case ran (cases run one at a time here, so they are attributable)
  const errorsByClass = new Map<string, ReadonlyArray<string>>()

  it.each(classes.map((c) => [c.name, c] as const))(
    "no %s case keeps the next client from connecting, publishing and subscribing",
    async (name, cls) => {
      const [c] = fc.sample(cls.arbitrary(env), { seed: 42, numRuns: 1 })
      const hex = c!.bytes.subarray(0, 96).toString("hex")
      // one innocent races the hostile connection's aftermath, one connects after it is over
      const logged = broker.logs.length
      let racing: ReturnType<typeof innocent> | undefined
      await probe(broker.port, c!, `reg-${name}`, () => {
        racing = innocent(broker.port, `reg-race-${name}`, 4, true, 2000)
      })
      const after = await innocent(broker.port, `reg-after-${name}`, 5, true, 2000)
      const during = await racing!
      const errors = broker.logs.slice(logged).filter((line) => /^(ERROR|FATAL)/.test(line))
      if (errors.length > 0) errorsByClass.set(name, errors.map((line) => `${line} — after ${c!.variant}: ${hex}`))
      expect({ during: during.detail, after: after.detail }, `after [${name}] ${c!.variant}: ${hex}`).toEqual({ during: "", after: "" })
      expect(during.ok && after.ok).toBe(true)
    },
    15_000
  )

  it("no hostile case makes the broker log an unhandled error (a defect, not a handled protocol violation)", () => {
    expect(Object.fromEntries(errorsByClass)).toEqual({})
  })
})
