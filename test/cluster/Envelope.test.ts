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
  it("a batch of forwarded messages decodes to what was encoded, in order (message, publisher, shared subscriptions)", () => {
    const forwardedArb = fc.record({
      message: messageArb,
      publisherId: fc.option(fc.string(), { nil: undefined }),
      shared: fc.array(fc.string(), { maxLength: 3 })
    })
    fc.assert(fc.property(fc.array(forwardedArb, { maxLength: 5 }), (batch) => {
      const decoded = Envelope.decodeBatch(Envelope.encodeBatch(batch))
      expect(decoded?.skipped).toBe(0)
      expect(decoded!.forwarded.map((f) => ({ ...f, message: plain(f.message) }))).toMatchObject(
        batch.map((f) => ({ ...f, message: plain(f.message) }))
      )
    }))
  })

  it("an unreadable entry is left out of its batch, the others kept in order", () => {
    const ok = (payload: string) => ({ message: { topic: "t", payload: new TextEncoder().encode(payload), qos: 0 as const, retain: false }, publisherId: undefined, shared: [] })
    const text = Envelope.encodeBatch([ok("1"), ok("2")])
    const tampered = text.replace(/^\[/, "[[null,[],\"garbage\"],")
    const decoded = Envelope.decodeBatch(tampered)
    expect(decoded?.skipped).toBe(1)
    expect(decoded!.forwarded.map((f) => new TextDecoder().decode(f.message.payload))).toEqual(["1", "2"])
  })

  it("a control event decodes to what was encoded", () => {
    const controlArb = fc.oneof(
      fc.record({ _tag: fc.constant("FilterAdded" as const), node: fc.string(), filter: fc.string() }),
      fc.record({ _tag: fc.constant("FilterRemoved" as const), node: fc.string(), filter: fc.string() }),
      fc.record({ _tag: fc.constant("FiltersReset" as const), node: fc.string() }),
      fc.record({ _tag: fc.constant("NodeLeft" as const), node: fc.string() }),
      fc.record({ _tag: fc.constant("Adopted" as const), node: fc.string(), by: fc.string() }),
      fc.record({ _tag: fc.constant("Retained" as const), node: fc.string(), topic: fc.string(), message: fc.option(messageArb, { nil: undefined }) })
    )
    fc.assert(fc.property(controlArb, (event) => {
      const decoded = Envelope.decodeControl(Envelope.encodeControl(event))
      expect(decoded).toBeDefined()
      if (event._tag === "Retained" && decoded?._tag === "Retained") {
        expect({ ...decoded, message: decoded.message && plain(decoded.message) }).toMatchObject({ ...event, message: event.message && plain(event.message) })
      } else {
        expect(decoded).toEqual(event)
      }
    }))
  })

  it.each(["", "not json", "{}", "1", "\"x\""])("text %j is no batch: undefined, without throwing", (text) => {
    expect(Envelope.decodeBatch(text)).toBeUndefined()
  })

  it.each(["", "not json", "[]", "[1,2,3]", "[\"+\",\"n\"]", "[\"r\",\"n\",\"t\",\"garbage\"]", "[\"?\",\"n\",\"f\"]"])(
    "text of no known shape %j is no control event: undefined, without throwing",
    (text) => {
      expect(Envelope.decodeControl(text)).toBeUndefined()
    }
  )

  it("any takeover message decodes to itself after encoding", () => {
    const takeoverArb: fc.Arbitrary<Envelope.Takeover> = fc.oneof(
      fc.record({ _tag: fc.constant("Claim" as const), clientId: fc.string(), from: fc.string(), request: fc.string() }),
      fc.record({ _tag: fc.constant("Released" as const), request: fc.string(), clientId: fc.string(), node: fc.string() })
    )
    fc.assert(fc.property(takeoverArb, (takeover) => {
      expect(Envelope.decodeTakeover(Envelope.encodeTakeover(takeover))).toEqual(takeover)
    }))
  })

  it.each(["", "not json", "[]", "[\"claim\",\"c\",\"n\"]", "[\"released\",1]", "[\"?\",\"r\"]"])(
    "text of no known shape %j is no takeover message: undefined, without throwing",
    (text) => {
      expect(Envelope.decodeTakeover(text)).toBeUndefined()
    }
  )
})
