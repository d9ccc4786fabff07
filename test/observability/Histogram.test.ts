import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { Histogram } from "../../src/observability/Histogram.ts"
import { refusalReason, Stats } from "../../src/observability/Stats.ts"

describe("Histogram", () => {
  it("counts each value in the first bucket whose bound is at least the value; buckets are cumulative", () => {
    const histogram = new Histogram([0.1, 1, 0.5])
    for (const value of [0.05, 0.1, 0.3, 0.7, 2, 5]) histogram.observe(value)
    expect(histogram.state()).toEqual({
      buckets: [[0.1, 2], [0.5, 3], [1, 4]],
      count: 6,
      min: 0.05,
      max: 5,
      sum: 0.05 + 0.1 + 0.3 + 0.7 + 2 + 5
    })
  })

  it("property: the last bucket counts every value not above the largest bound, and count is every value", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 10, noNaN: true })), (values) => {
        const histogram = new Histogram([0.001, 0.01, 0.1, 1])
        values.forEach((value) => histogram.observe(value))
        const { buckets, count } = histogram.state()
        expect(count).toBe(values.length)
        expect(buckets.at(-1)![1]).toBe(values.filter((value) => value <= 1).length)
        for (let i = 1; i < buckets.length; i++) expect(buckets[i]![1]).toBeGreaterThanOrEqual(buckets[i - 1]![1])
      })
    )
  })
})

describe("Stats", () => {
  it("refusals are counted by the reason code's name, unknown codes as other", () => {
    const stats = new Stats()
    stats.refuse(0x86)
    stats.refuse(0x86)
    stats.refuse(0x9f)
    stats.refuse(0x01)
    expect(Object.fromEntries(stats.refusals)).toEqual({ bad_user_name_or_password: 2, connection_rate_exceeded: 1, other: 1 })
    expect(stats.connectionsRefused).toBe(4)
    expect(refusalReason(0x97)).toBe("quota_exceeded")
  })

  it("the maximum of connected clients only grows", () => {
    const stats = new Stats()
    stats.accept(3)
    stats.accept(1)
    expect([stats.connectionsAccepted, stats.maxConnected]).toEqual([2, 3])
  })
})

describe("Stats: latency sampling", () => {
  it("samples the first routed message and then one in LATENCY_SAMPLE_EVERY", async () => {
    const { LATENCY_SAMPLE_EVERY } = await import("../../src/observability/Stats.ts")
    const stats = new Stats()
    const sampled = Array.from({ length: 3 * LATENCY_SAMPLE_EVERY }, () => stats.sampleLatency())
    expect(sampled.flatMap((yes, i) => (yes ? [i] : []))).toEqual([0, LATENCY_SAMPLE_EVERY, 2 * LATENCY_SAMPLE_EVERY])
  })
})
