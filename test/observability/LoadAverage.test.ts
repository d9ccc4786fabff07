import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as LoadAverage from "../../src/observability/LoadAverage.ts"

describe("LoadAverage (Mosquitto's $SYS/broker/load figures)", () => {
  it("one event in the first second gives Mosquitto's 1min figure (60 × (1 − e^(−1/60)) ≈ 0.99)", () => {
    // the value Mosquitto 2.0.11 published for load/publish/received/1min after one PUBLISH
    expect(LoadAverage.next(0, 1, 1, 60).toFixed(2)).toBe("0.99")
    expect(LoadAverage.next(0, 1, 1, 300).toFixed(2)).toBe("0.20")
    expect(LoadAverage.next(0, 1, 1, 900).toFixed(2)).toBe("0.07")
  })

  it("no time elapsed leaves a load unchanged", () => {
    expect(LoadAverage.next(12.5, 40, 0, 60)).toBe(12.5)
    expect(LoadAverage.update({ "1min": 1, "5min": 2, "15min": 3 }, 9, 0)).toEqual({ "1min": 1, "5min": 2, "15min": 3 })
  })

  it("property: a steady per-minute rate is approached from below and never passed", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 60 }), (perTick, tickSeconds) => {
        const rate = (perTick * 60) / tickSeconds
        let loads = LoadAverage.zero
        let previous = loads
        // five 15-minute time constants: e^-5 < 1 % left of the start
        const ticks = Math.ceil((5 * 900) / tickSeconds)
        for (let i = 0; i < ticks; i++) {
          loads = LoadAverage.update(loads, perTick, tickSeconds)
          for (const [window] of LoadAverage.WINDOWS) {
            expect(loads[window]).toBeGreaterThanOrEqual(previous[window])
            expect(loads[window]).toBeLessThanOrEqual(rate * (1 + 1e-12))
          }
          previous = loads
        }
        // even the 15 min load is within 1 % of the rate by then
        expect(loads["15min"]).toBeGreaterThan(rate * 0.99)
      }),
      { numRuns: 50 }
    )
  })

  it("property: the shorter the window, the faster a load follows a change (1min ≥ 5min ≥ 15min while rising)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 20 }), (counts) => {
        const rising = [...counts].sort((a, b) => a - b)
        let loads = LoadAverage.zero
        for (const count of rising) {
          loads = LoadAverage.update(loads, count, 10)
          expect(loads["1min"]).toBeGreaterThanOrEqual(loads["5min"] - 1e-9)
          expect(loads["5min"]).toBeGreaterThanOrEqual(loads["15min"] - 1e-9)
        }
      })
    )
  })
})
