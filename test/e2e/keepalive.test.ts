import { describe, expect, it } from "@effect/vitest"
import { sleep, uniqueId, useE2E } from "./harness.ts"

const e2e = useE2E()

describe("keepalive", () => {
  it("a client with keepalive 1 s that sends nothing is disconnected after about 1.5 s", async () => {
    const broker = await e2e.broker()
    const connectedAt = Date.now()
    const { raw, connack } = await e2e.rawConnect(broker, { clientId: uniqueId("ka"), keepalive: 1 })
    expect(connack.returnCode).toBe(0)
    expect(await raw.waitClosed(4_000)).toBe(true)
    const elapsed = Date.now() - connectedAt
    // The spec allows 1.5 × keepalive; generous margins on both sides.
    expect(elapsed).toBeGreaterThanOrEqual(1_000)
    expect(elapsed).toBeLessThanOrEqual(2_500)
  }, 6_000)

  it("PINGREQ gets PINGRESP", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { clientId: uniqueId("ping"), keepalive: 10 })
    raw.send({ cmd: "pingreq" })
    const response = await raw.next()
    expect(response.cmd).toBe("pingresp")
  })

  it("a client with keepalive 1 s that keeps sending PINGREQ stays connected past 1.5 s", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { clientId: uniqueId("alive"), keepalive: 1 })
    for (let i = 0; i < 5; i++) {
      await sleep(500)
      await raw.ping()
    }
    expect(raw.isClosed).toBe(false)
  }, 6_000)
})
