import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Envelope from "../../src/cluster/Envelope.ts"
import type { Message } from "../../src/session/Message.ts"

const messageArb: fc.Arbitrary<Message> = fc.record({
  topic: fc.string({ minLength: 1 }),
  payload: fc.uint8Array({ maxLength: 64 }),
  qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
  retain: fc.boolean()
})

/** The fields a message crosses nodes with, as plain data (the payload as bytes). */
const plain = (message: Message) => ({ ...message, payload: Array.from(message.payload) })

describe("cluster Envelope", () => {
  it("a forwarded message decodes to what was encoded (message, publisher, shared subscriptions)", () => {
    fc.assert(fc.property(messageArb, fc.option(fc.string(), { nil: undefined }), fc.array(fc.string(), { maxLength: 3 }), (message, publisherId, shared) => {
        const decoded = Envelope.decodeForwarded(Envelope.encodeForwarded({ message, publisherId, shared }))
        expect(decoded).toBeDefined()
        expect(plain(decoded!.message)).toMatchObject(plain(message))
        expect(decoded!.publisherId).toBe(publisherId)
        expect(decoded!.shared).toEqual(shared)
      }))
  })

  it("a control event decodes to what was encoded", () => {
    fc.assert(fc.property(fc.oneof(
      fc.record({ _tag: fc.constant("FilterAdded" as const), node: fc.string(), filter: fc.string() }),
      fc.record({ _tag: fc.constant("FilterRemoved" as const), node: fc.string(), filter: fc.string() }),
      fc.record({ _tag: fc.constant("FiltersReset" as const), node: fc.string() }),
      fc.record({ _tag: fc.constant("NodeLeft" as const), node: fc.string() }),
      fc.record({ _tag: fc.constant("Retained" as const), node: fc.string(), topic: fc.string(), message: fc.option(messageArb, { nil: undefined }) })
    ), (event) => {
    const decoded = Envelope.decodeControl(Envelope.encodeControl(event))
    expect(decoded).toBeDefined()
    if (event._tag === "Retained" && decoded?._tag === "Retained") {
      expect({ ...decoded, message: decoded.message && plain(decoded.message) }).toMatchObject({ ...event, message: event.message && plain(event.message) })
    } else {
      expect(decoded).toEqual(event)
    }
  }))
  })

  it.each(["", "not json", "[]", "[1,2,3]", "[null,[1],\"x\"]", "[\"+\",\"n\"]", "[\"r\",\"n\",\"t\",\"garbage\"]", "[\"?\",\"n\",\"f\"]"])(
    "text of no known shape %j decodes to undefined, without throwing",
    (text) => {
      expect(Envelope.decodeForwarded(text)).toBeUndefined()
      expect(Envelope.decodeControl(text)).toBeUndefined()
    }
  )
})
