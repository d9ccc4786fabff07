import { describe, expect, it } from "vitest"
import { gate } from "../../src/auth/AuthFailureGate.ts"
import { ConnectRate } from "../../src/auth/ConnectRate.ts"

describe("AuthFailureGate", () => {
  it("admits until an address has spent its failures, then refuses it with one warning a second (counting what it closed), and never refuses other addresses", () => {
    const failures = new ConnectRate(2)
    let now = 0
    const warnings: Array<string> = []
    const admit = gate(failures, 2, () => now, (line) => warnings.push(line))
    expect(admit("10.0.0.1")).toBe(true)
    failures.spend("10.0.0.1", now)
    failures.spend("10.0.0.1", now)
    expect([admit("10.0.0.1"), admit("10.0.0.1"), admit("10.0.0.1")]).toEqual([false, false, false])
    expect(admit("10.0.0.2")).toBe(true)
    expect(warnings).toEqual([
      "closing connections from 10.0.0.1 unread: over --max-auth-failure-rate 2 failed authentications a second (1 closed since the last such line)"
    ])
    // still empty a little later: refused quietly until a second has passed since the warning
    now = 100
    expect(admit("10.0.0.1")).toBe(false)
    expect(warnings).toHaveLength(1)
    // half a second refills one token (2 a second)
    now = 600
    expect(admit("10.0.0.1")).toBe(true)
  })
})
