import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as BinaryBatch from "../../src/cluster/BinaryBatch.ts"
import * as Envelope from "../../src/cluster/Envelope.ts"
import type { Message } from "../../src/session/Message.ts"

// any Unicode text (no lone surrogates: MQTT strings are UTF-8)
const text = fc.string({ unit: "binary", maxLength: 12 })

const propertiesArb = fc.record({
  payloadFormatIndicator: fc.boolean(),
  contentType: text,
  responseTopic: text,
  correlationData: fc.uint8Array({ maxLength: 16 }),
  userProperties: fc.array(fc.tuple(text, text), { maxLength: 3 })
}, { requiredKeys: [] })

const messageWith = (expiresAt: fc.Arbitrary<number>): fc.Arbitrary<Message> => fc.record({
  topic: fc.string({ unit: "binary", minLength: 1, maxLength: 20 }),
  payload: fc.uint8Array({ maxLength: 300 }),
  qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
  retain: fc.boolean(),
  properties: propertiesArb,
  expiresAt,
  subscriptionIds: fc.array(fc.integer({ min: 1, max: 268_435_455 }), { maxLength: 3 })
}, { requiredKeys: ["topic", "payload", "qos", "retain"] })

const forwardedWith = (expiresAt: fc.Arbitrary<number>): fc.Arbitrary<Envelope.Forwarded> => fc.record({
  message: messageWith(expiresAt),
  publisherId: fc.option(text, { nil: undefined }),
  shared: fc.array(text, { maxLength: 3 })
})

// any number (-0, infinities, NaN): the binary form keeps every one
const forwardedArb = forwardedWith(fc.double())
// an expiry time as the broker makes them (epoch ms), which JSON carries too
const forwardedJsonArb = forwardedWith(fc.integer({ min: 0, max: 2 ** 47 }))

/** A forwarded message as plain data: bytes as arrays, so a Buffer and a Uint8Array of the same bytes compare equal. */
const plain = ({ message, publisherId, shared }: Envelope.Forwarded) => {
  const { correlationData, ...properties } = message.properties ?? {}
  return {
    message: {
      ...message,
      payload: Array.from(message.payload),
      ...(message.properties === undefined
        ? {}
        : { properties: { ...properties, ...(correlationData === undefined ? {} : { correlationData: Array.from(correlationData) }) } })
    },
    publisherId,
    shared: [...shared]
  }
}

const ok = (payload: string, topic = "t"): Envelope.Forwarded => ({
  message: { topic, payload: new TextEncoder().encode(payload), qos: 1, retain: false },
  publisherId: "p",
  shared: []
})

describe("cluster BinaryBatch", () => {
  it("decode(encode(batch)) is the batch: every message field, publisher and shared subscription, in order, none skipped", () => {
    fc.assert(fc.property(fc.array(forwardedArb, { maxLength: 6 }), (batch) => {
      const bytes = BinaryBatch.encode(batch)
      expect(bytes).toBeDefined()
      const decoded = BinaryBatch.decode(bytes!)
      expect(decoded?.skipped).toBe(0)
      expect(decoded!.forwarded.map(plain)).toStrictEqual(batch.map(plain))
    }), { numRuns: 300 })
  })

  it("a binary batch is told from a JSON one by its first byte, and Envelope.decodeBatchEntry reads both (bytes, text, one char per byte) to the same messages", () => {
    fc.assert(fc.property(fc.array(forwardedJsonArb, { maxLength: 4 }), (batch) => {
      const binary = BinaryBatch.encode(batch)!
      const json = Envelope.encodeBatch(batch)
      expect(BinaryBatch.isBinary(binary)).toBe(true)
      expect(BinaryBatch.isBinary(Buffer.from(json))).toBe(false)
      const fromJson = Envelope.decodeBatchEntry(Buffer.from(json))
      const fromText = Envelope.decodeBatchEntry(json)
      const fromBinary = Envelope.decodeBatchEntry(binary)
      const fromLatin1 = Envelope.decodeBatch(binary.toString("latin1"))
      expect(fromLatin1!.forwarded.map(plain)).toStrictEqual(fromBinary!.forwarded.map(plain))
      expect(fromJson?.skipped).toBe(0)
      // the JSON form has no empty properties object nor key order to keep: compare what both carry
      expect(fromBinary!.forwarded.map(plain)).toMatchObject(fromJson!.forwarded.map(plain))
      expect(fromText!.forwarded.map(plain)).toStrictEqual(fromJson!.forwarded.map(plain))
    }), { numRuns: 100 })
  })

  it("decoding any bytes never throws; what it gives back is well-formed messages", () => {
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 200 }).map((tail) => Uint8Array.from([BinaryBatch.MAGIC, ...tail]))
    )
    fc.assert(fc.property(bytesArb, (bytes) => {
      const decoded = BinaryBatch.decode(bytes)
      for (const { message } of decoded?.forwarded ?? []) {
        expect([0, 1, 2]).toContain(message.qos)
        expect(typeof message.topic).toBe("string")
        expect(message.payload).toBeInstanceOf(Uint8Array)
      }
      expect(decoded === undefined || decoded.skipped >= 0).toBe(true)
    }), { numRuns: 2000 })
  })

  it("a batch with one byte changed or cut short never throws; a change inside one entry's body loses that entry at most, a cut only the entries it reaches", () => {
    const tamperArb = fc.record({
      batch: fc.array(forwardedArb, { minLength: 1, maxLength: 4 }),
      at: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
      cut: fc.boolean()
    })
    fc.assert(fc.property(tamperArb, ({ at, batch, cut, value }) => {
      const bytes = Buffer.from(BinaryBatch.encode(batch)!)
      // where each entry starts (the header is two bytes for these small counts), and where its body does
      const starts = batch.map((_, i) => BinaryBatch.encode(batch.slice(0, i))!.length)
      const ends = [...starts.slice(1), bytes.length]
      const bodyStart = (k: number) => {
        let i = starts[k]!
        while (bytes[i]! >= 0x80) i++
        return i + 1
      }
      const index = at % bytes.length
      if (cut) {
        const decoded = BinaryBatch.decode(bytes.subarray(0, index))
        if (index < 2) return
        const whole = batch.filter((_, k) => ends[k]! <= index)
        expect(decoded!.forwarded.map(plain)).toStrictEqual(whole.map(plain))
        expect(decoded!.skipped).toBe(batch.length - whole.length)
        return
      }
      bytes[index] = value
      const decoded = BinaryBatch.decode(bytes)
      const k = starts.findLastIndex((start) => start <= index)
      // a changed header or entry length may make anything of the rest: it only must not throw
      if (k < 0 || index < bodyStart(k)) return
      const got = decoded!.forwarded.map(plain)
      const others = batch.filter((_, j) => j !== k).map(plain)
      expect(got.length + decoded!.skipped).toBe(batch.length)
      expect(got.length === batch.length ? got.filter((_, j) => j !== k) : got).toStrictEqual(others)
    }), { numRuns: 1000 })
  })

  it("a tampered entry is skipped and counted, the entries before and after it delivered in order", () => {
    const first = BinaryBatch.encode([ok("1")])!
    const bytes = Buffer.from(BinaryBatch.encode([ok("1"), ok("2"), ok("3")])!)
    // the second entry starts where a batch of the first alone ends (one-byte count and lengths);
    // after its length byte comes its flags byte: QoS 3 is no message
    bytes[first.length + 1] = 0b11
    const decoded = BinaryBatch.decode(bytes)
    expect(decoded?.skipped).toBe(1)
    expect(decoded!.forwarded.map((f) => new TextDecoder().decode(f.message.payload))).toEqual(["1", "3"])
  })

  it("an entry whose length runs past the end leaves the rest of the batch skipped, what came before delivered", () => {
    const first = BinaryBatch.encode([ok("1")])!
    const bytes = Buffer.from(BinaryBatch.encode([ok("1"), ok("2"), ok("3")])!)
    bytes[first.length] = 0x7f
    const decoded = BinaryBatch.decode(bytes)
    expect(decoded?.skipped).toBe(2)
    expect(decoded!.forwarded.map((f) => new TextDecoder().decode(f.message.payload))).toEqual(["1"])
  })

  it("a payload decoded is a copy: changing the batch's bytes afterwards does not change the message", () => {
    const bytes = Buffer.from(BinaryBatch.encode([ok("abc")])!)
    const decoded = BinaryBatch.decode(bytes)!
    bytes.fill(0)
    expect(new TextDecoder().decode(decoded.forwarded[0]!.message.payload)).toBe("abc")
  })

  it("a subscription identifier the form cannot carry makes no binary batch (the JSON form is sent instead)", () => {
    const odd = { ...ok("x"), message: { ...ok("x").message, subscriptionIds: [1.5] } }
    expect(BinaryBatch.encode([ok("a"), odd])).toBeUndefined()
  })
})
