import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { UploadPacer } from "../../src/broker/UploadPacer.ts"

const busy = (ms: number) => {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // hold the event loop, as a burst of work would
  }
}

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("UploadPacer", () => {
  it("samples nothing until a large upload asks, and does not pause while the loop is not lagging", async () => {
    const pacer = new UploadPacer()
    await tick(30)
    expect(pacer.lag).toBe(0)
    await Effect.runPromise(pacer.pace)
    await tick(30)
    expect(pacer.lag).toBeLessThan(10)
  })

  it("after the event loop was held for 60 ms, the lag is seen and a large upload pauses before reading on", async () => {
    const pacer = new UploadPacer()
    await Effect.runPromise(pacer.pace) // starts sampling
    await tick(15)
    busy(60)
    await tick(1) // the sampler fires late: that delay is the lag
    expect(pacer.lag).toBeGreaterThan(40)
    const started = performance.now()
    await Effect.runPromise(pacer.pace)
    expect(performance.now() - started).toBeGreaterThanOrEqual(9)
  })
})
