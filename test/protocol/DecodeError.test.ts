/**
 * Decode failures as values: PUBLISH decoding returns a `Malformed` reason (never throws), and
 * each reason maps to the MQTT 5 reason code and the line the broker answers with.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { DecodeError, describe as describeReason, malformed, protocolError, reasonCodeOf, unsupportedProtocolVersion } from "../../src/protocol/DecodeError.ts"
import { decodePublishPacket } from "../../src/protocol/Publish.ts"
import { varint } from "../fuzz/Wire.ts"

/** A PUBLISH frame with flags `flags` around `body`. */
const frame = (flags: number, body: Uint8Array): Buffer => Buffer.concat([Buffer.from([0x30 | flags]), varint(body.length), body])

describe("DecodeError", () => {
  it("each reason maps to its MQTT 5 reason code", () => {
    expect(reasonCodeOf({ _tag: "TooLarge", size: 10, limit: 5 })).toBe(0x95)
    expect(reasonCodeOf({ _tag: "MalformedLength" })).toBe(0x81)
    expect(reasonCodeOf(malformed("x"))).toBe(0x81)
    expect(reasonCodeOf(protocolError("x"))).toBe(0x82)
    expect(reasonCodeOf(unsupportedProtocolVersion)).toBe(0x84)
  })

  it("the error wraps its reason and says it as its message", () => {
    const error = new DecodeError({ reason: { _tag: "TooLarge", size: 203, limit: 100 } })
    expect(error._tag).toBe("DecodeError")
    expect(error.message).toBe("packet of 203 bytes exceeds the maximum packet size 100")
    expect(describeReason(malformed("bad"))).toBe("malformed packet: bad")
  })

  it("a PUBLISH cut short or overrunning its fields is a Malformed value saying which", () => {
    expect(decodePublishPacket(frame(0, Buffer.from([0])), 4)).toEqual(malformed("PUBLISH too short"))
    expect(decodePublishPacket(frame(0, Buffer.from([0, 5, 0x61])), 4)).toEqual(malformed("PUBLISH field overruns the packet"))
    expect(decodePublishPacket(frame(2, Buffer.from([0, 1, 0x61, 0])), 4)).toEqual(malformed("PUBLISH too short"))
    expect(decodePublishPacket(frame(0, Buffer.from([0, 1, 0x61, 0xff, 0xff, 0xff, 0xff])), 5)).toEqual(malformed("malformed variable byte integer"))
    expect(decodePublishPacket(frame(0, Buffer.from([0, 1, 0x61, 3, 0x02, 0, 0])), 5)).toEqual(malformed("PUBLISH field overruns the packet"))
  })

  it("property: decoding any PUBLISH body, at any version, returns a PUBLISH or a Malformed value and never throws", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 15 }), fc.uint8Array({ maxLength: 64 }), fc.constantFrom(3, 4, 5), (flags, body, version) => {
        const decoded = decodePublishPacket(frame(flags, body), version)
        expect("cmd" in decoded ? decoded.cmd : decoded._tag).toMatch(/^(publish|Malformed)$/)
      }),
      { numRuns: 2000 }
    )
  })
})
