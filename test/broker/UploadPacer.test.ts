import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { MIN_RATE, nextRate, UploadPacer } from "../../src/broker/UploadPacer.ts"

const busy = (ms: number) => {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // hold the event loop, as a burst of work would
  }
}

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("UploadPacer", () => {
  it("the rate halves when the loop lagged, grows while it keeps up, and stays within its floor", () => {
    const rate = 100 * 1024 * 1024
    expect(nextRate(rate, 10)).toBe(rate / 2)
    expect(nextRate(rate, 0)).toBeGreaterThan(rate)
    expect(nextRate(MIN_RATE, 50)).toBe(MIN_RATE)
    let collapsed = rate
    for (let i = 0; i < 100; i++) collapsed = nextRate(collapsed, 10)
    expect(collapsed).toBe(MIN_RATE)
  })

  it("samples nothing until a large upload asks", async () => {
    const pacer = new UploadPacer()
    await tick(30)
    expect(pacer.lag).toBe(0)
    await Effect.runPromise(pacer.reader().pace(0))
    await tick(30)
    expect(pacer.lag).toBeLessThan(10)
  })

  it("after the event loop was held for 60 ms, the lag is seen and the large-upload rate falls", async () => {
    const pacer = new UploadPacer()
    const reader = pacer.reader()
    await Effect.runPromise(reader.pace(0)) // starts sampling
    await tick(20)
    const before = pacer.rate
    busy(60)
    await tick(1) // the sampler fires late: that delay is the lag
    expect(pacer.lag).toBeGreaterThan(40)
    expect(pacer.rate).toBeLessThan(before)
  })

  it("readers over the shared budget wait, and are let go in the order they asked", async () => {
    const pacer = new UploadPacer()
    const order: Array<number> = []
    const readers = [pacer.reader(), pacer.reader(), pacer.reader()]
    // far more than one period's budget: everyone after this waits for refills
    const fibers = readers.map((reader, i) =>
      Effect.runFork(reader.pace(64 * 1024 * 1024).pipe(Effect.tap(() => Effect.sync(() => order.push(i)))))
    )
    await tick(1)
    expect(order).toEqual([])
    await Effect.runPromise(Fiber.joinAll(fibers))
    expect(order).toEqual([0, 1, 2])
  })

  it("an interrupted waiter leaves the queue, and the readers behind it still go", async () => {
    const pacer = new UploadPacer()
    const first = Effect.runFork(pacer.reader().pace(64 * 1024 * 1024))
    const second = Effect.runFork(pacer.reader().pace(1))
    await tick(1)
    await Effect.runPromise(Fiber.interrupt(first))
    await Effect.runPromise(Fiber.join(second))
    expect(second.pollUnsafe()).toBeDefined()
  })
})
