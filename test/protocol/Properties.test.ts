import { describe, expect, it } from "@effect/vitest"
import { scanProperties } from "../../src/protocol/Properties.ts"

const scan = (bytes: Array<number>, set: Parameters<typeof scanProperties>[2]) => scanProperties(Uint8Array.from(bytes), 0, set)

describe("MQTT 5 property lists", () => {
  it("reads a valid list to its end, user properties repeated", () => {
    const list = [0x11, 0, 0, 0, 10, 0x26, 0, 1, 0x61, 0, 1, 0x62, 0x26, 0, 1, 0x61, 0, 0, 0x21, 0, 5]
    expect(scan([list.length, ...list], "connect")).toEqual({ end: list.length + 1 })
  })

  it("an empty list ends right after its length", () => {
    expect(scan([0], "subscribe")).toEqual({ end: 1 })
  })

  it("a property twice is refused (MQTT 5 §2.2.2.2)", () => {
    expect(scan([6, 0x21, 0, 1, 0x21, 0, 2], "connect")).toMatchObject({ error: "property 0x21 more than once" })
  })

  it("a property that does not belong to the packet, or does not exist, is refused", () => {
    expect(scan([3, 0x23, 0, 1], "subscribe")).toMatchObject({ error: expect.stringContaining("not allowed") })
    expect(scan([2, 0x7f, 0], "connect")).toMatchObject({ error: expect.stringContaining("not allowed") })
  })

  it("values the spec makes a protocol error are refused: Receive Maximum 0, Maximum Packet Size 0, Request Problem Information 2, Subscription Identifier 0", () => {
    expect(scan([3, 0x21, 0, 0], "connect")).toMatchObject({ error: expect.stringContaining("must not be 0") })
    expect(scan([5, 0x27, 0, 0, 0, 0], "connect")).toMatchObject({ error: expect.stringContaining("must not be 0") })
    expect(scan([2, 0x17, 2], "connect")).toMatchObject({ error: expect.stringContaining("0 or 1") })
    expect(scan([2, 0x0b, 0], "subscribe")).toMatchObject({ error: expect.stringContaining("must not be 0") })
    expect(scan([5, 0x27, 0, 0, 1, 0], "connect")).toEqual({ end: 6 })
  })

  it("a list or a property that overruns the packet is refused", () => {
    expect(scan([9, 0x11, 0, 0], "connect")).toMatchObject({ error: "properties overrun the packet" })
    expect(scan([3, 0x11, 0, 0], "connect")).toMatchObject({ error: "property overruns the list" })
    expect(scan([4, 0x26, 0, 5, 0x61], "connect")).toMatchObject({ error: "property overruns the list" })
  })
})
