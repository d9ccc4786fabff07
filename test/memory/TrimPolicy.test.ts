import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as TrimPolicy from "../../src/memory/TrimPolicy.ts"

const MB = 1024 * 1024
const policy = TrimPolicy.defaultPolicy

/** A broker's life as the trimmer reads it: every 500 ms a utilization and a committed heap; a trim takes `tookMs` and leaves `after` bytes. */
const readingArb = fc.record({
  utilization: fc.oneof(fc.double({ min: 0, max: 0.049, noNaN: true }), fc.double({ min: 0.05, max: 1, noNaN: true })),
  committed: fc.integer({ min: 4 * MB, max: 400 * MB }),
  tookMs: fc.double({ min: 1, max: 2_000, noNaN: true }),
  after: fc.integer({ min: 4 * MB, max: 64 * MB })
})

type Generated = typeof readingArb extends fc.Arbitrary<infer A> ? A : never

/** Runs the policy over `readings` as `HeapTrim.run` does; returns each trim with the reading that caused it. */
const simulate = (readings: ReadonlyArray<Generated>) => {
  let state = TrimPolicy.initial(4 * MB)
  const trims: Array<{ at: number; tookMs: number; utilization: number; committed: number; baseline: number }> = []
  readings.forEach((r, i) => {
    const reading = { now: i * 500, utilization: r.utilization, committed: r.committed }
    if (TrimPolicy.shouldTrim(policy, state, reading)) {
      trims.push({ at: reading.now, tookMs: r.tookMs, utilization: r.utilization, committed: r.committed, baseline: state.baseline })
      state = TrimPolicy.trimmed(policy, Math.min(r.after, r.committed), reading.now + r.tookMs, r.tookMs)
    } else {
      state = TrimPolicy.observed(state, reading)
    }
  })
  return trims
}

describe("TrimPolicy (when a burst's memory is given back)", () => {
  it("a quiet broker whose heap grew by 16 MB since the last trim trims; busy, or grown less, it does not", () => {
    const state = TrimPolicy.trimmed(policy, 20 * MB, 0, 10)
    const quiet = { now: 5_000, utilization: 0.01, committed: 36 * MB }
    expect(TrimPolicy.shouldTrim(policy, state, quiet)).toBe(true)
    expect(TrimPolicy.shouldTrim(policy, state, { ...quiet, utilization: 0.2 })).toBe(false)
    expect(TrimPolicy.shouldTrim(policy, state, { ...quiet, committed: 35 * MB })).toBe(false)
  })

  it("growth counts from the heap the trimmer started with, not from nothing", () => {
    const state = TrimPolicy.initial(20 * MB)
    expect(TrimPolicy.shouldTrim(policy, state, { now: 500, utilization: 0, committed: 30 * MB })).toBe(false)
    expect(TrimPolicy.shouldTrim(policy, state, { now: 500, utilization: 0, committed: 36 * MB })).toBe(true)
  })

  it("after a trim of 100 ms the next waits 10 s (1 % of the time)", () => {
    const state = TrimPolicy.trimmed(policy, 20 * MB, 1_000, 100)
    const grown = { utilization: 0, committed: 200 * MB }
    expect(TrimPolicy.shouldTrim(policy, state, { ...grown, now: 10_999 })).toBe(false)
    expect(TrimPolicy.shouldTrim(policy, state, { ...grown, now: 11_000 })).toBe(true)
  })

  it("the baseline follows the heap down when V8 shrinks it itself, so growth is counted from there", () => {
    const state = TrimPolicy.observed(TrimPolicy.trimmed(policy, 40 * MB, 0, 1), { now: 1_000, utilization: 0, committed: 24 * MB })
    expect(state.baseline).toBe(24 * MB)
    expect(TrimPolicy.shouldTrim(policy, state, { now: 2_000, utilization: 0, committed: 40 * MB })).toBe(true)
  })

  it("property: never trims a busy reading, nor one grown less than 16 MB over its baseline", () => {
    fc.assert(fc.property(fc.array(readingArb, { maxLength: 200 }), (readings) => {
      for (const trim of simulate(readings)) {
        expect(trim.utilization).toBeLessThan(policy.quietUtilization)
        expect(trim.committed - trim.baseline).toBeGreaterThanOrEqual(policy.growthBytes)
      }
    }))
  })

  it("property: trims take at most 1 % of the time between them (each waits 100× the one before)", () => {
    fc.assert(fc.property(fc.array(readingArb, { maxLength: 200 }), (readings) => {
      const trims = simulate(readings)
      for (let i = 1; i < trims.length; i++) {
        const before = trims[i - 1]!
        expect(trims[i]!.at - (before.at + before.tookMs)).toBeGreaterThanOrEqual(before.tookMs / policy.timeBudget)
      }
    }))
  })

  it("property: a heap that grew and stays grown is trimmed at the first quiet reading once the wait is over", () => {
    fc.assert(fc.property(fc.double({ min: 1, max: 500, noNaN: true }), fc.integer({ min: 16, max: 300 }), (tookMs, grownMb) => {
      const state = TrimPolicy.trimmed(policy, 20 * MB, 0, tookMs)
      const reading = { now: Math.ceil(tookMs / policy.timeBudget), utilization: 0.01, committed: (20 + grownMb) * MB }
      expect(TrimPolicy.shouldTrim(policy, state, reading)).toBe(true)
    }))
  })
})
