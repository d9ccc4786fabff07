import { describe, expect, it } from "@effect/vitest"
import { addressOf, ConnectRate } from "../../src/auth/ConnectRate.ts"

const allowedCount = (rate: ConnectRate, address: string, at: number, attempts: number) =>
  Array.from({ length: attempts }, () => rate.take(address, at)).filter((verdict) => verdict.allowed).length

describe("ConnectRate", () => {
  it("lets one second's worth through at once, then the rate", () => {
    const rate = new ConnectRate(5)
    expect(allowedCount(rate, "10.0.0.1", 0, 8)).toBe(5)
    // 200 ms regain one token at 5 a second
    expect(allowedCount(rate, "10.0.0.1", 200, 3)).toBe(1)
    expect(allowedCount(rate, "10.0.0.1", 1_200, 10)).toBe(5)
  })

  it("keeps addresses apart", () => {
    const rate = new ConnectRate(1)
    expect(rate.take("10.0.0.1", 0).allowed).toBe(true)
    expect(rate.take("10.0.0.1", 0).allowed).toBe(false)
    expect(rate.take("10.0.0.2", 0).allowed).toBe(true)
  })

  it("reports a refusal at most once a second per address, with how many were refused since", () => {
    const rate = new ConnectRate(2)
    rate.take("a", 0)
    rate.take("a", 0)
    expect(rate.take("a", 0)).toEqual({ allowed: false, report: 1 })
    expect(rate.take("a", 100)).toEqual({ allowed: false, report: undefined })
    expect(rate.take("a", 200)).toEqual({ allowed: false, report: undefined })
    // a token regained by 600 is taken, the refusal right after is quiet too
    expect(rate.take("a", 600).allowed).toBe(true)
    expect(rate.take("a", 600)).toEqual({ allowed: false, report: undefined })
    // a second after the last report the next refusal is reported, counting the quiet ones
    expect(rate.take("a", 1_000).allowed).toBe(true)
    expect(rate.take("a", 1_000)).toEqual({ allowed: false, report: 4 })
  })

  it("forgets an address whose bucket has filled up again, as new ones arrive", () => {
    const rate = new ConnectRate(2)
    rate.take("idle", 0)
    rate.take("busy", 400)
    rate.take("busy", 400)
    expect(rate.size).toBe(2)
    // at 1000 "idle" has regained its token; "busy" has not
    rate.take("new", 1_000)
    expect(rate.size).toBe(2)
    expect(rate.take("busy", 1_000)).toEqual({ allowed: true })
  })

  it("remembers at most maxAddresses, forgetting the least recently seen", () => {
    const rate = new ConnectRate(1, 3)
    for (const address of ["a", "b", "c", "d"]) rate.take(address, 0)
    expect(rate.size).toBe(3)
    // "a" was forgotten: it starts again with a full bucket; "d" was not
    expect(rate.take("a", 0).allowed).toBe(true)
    expect(rate.take("d", 0).allowed).toBe(false)
  })

  it("check limits what spend counts: an address is refused only after spending its second's worth, and lets one in per refilled token", () => {
    const failures = new ConnectRate(2)
    // never counted: allowed, and not remembered
    expect(failures.check("a", 0)).toEqual({ allowed: true })
    expect(failures.size).toBe(0)
    failures.spend("a", 0)
    expect(failures.check("a", 0)).toEqual({ allowed: true })
    failures.spend("a", 0)
    failures.spend("a", 0) // more than the bucket holds: it stays empty, not negative
    expect(failures.check("a", 100)).toEqual({ allowed: false, report: 1 })
    expect(failures.check("a", 200)).toEqual({ allowed: false, report: undefined })
    // checking takes nothing: after half a second (one token back) it is allowed, and stays so until spent
    expect(failures.check("a", 500).allowed).toBe(true)
    expect(failures.check("a", 500).allowed).toBe(true)
    expect(failures.check("b", 500).allowed).toBe(true)
  })

  it("addressOf takes the host of host:port, IPv6 included", () => {
    expect(addressOf("127.0.0.1:50000")).toBe("127.0.0.1")
    expect(addressOf("::1:50000")).toBe("::1")
    expect(addressOf("::ffff:10.0.0.1:1883")).toBe("::ffff:10.0.0.1")
    expect(addressOf("websocket")).toBeUndefined()
  })
})
