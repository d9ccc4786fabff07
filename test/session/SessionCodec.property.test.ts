/**
 * The stored form round-trips: whatever a provider writes with `SessionCodec` it reads back equal,
 * MQTT 5 properties and payload bytes included; text of another version or shape is refused.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import * as fc from "fast-check"
import type { Message, PublishProperties } from "../../src/session/Message.ts"
import { MessageQueue } from "../../src/session/MessageQueue.ts"
import * as SessionCodec from "../../src/session/SessionCodec.ts"
import type { SessionState, Subscription } from "../../src/session/SessionState.ts"
import { sessionStateArb } from "./Arbitraries.ts"
import { params } from "./Props.ts"

/** MQTT 5 properties, each field present or absent (absent keys stay absent). */
const propertiesArb: fc.Arbitrary<PublishProperties> = fc.record({
  payloadFormatIndicator: fc.boolean(),
  contentType: fc.string(),
  responseTopic: fc.string(),
  correlationData: fc.uint8Array({ maxLength: 16 }),
  userProperties: fc.array(fc.tuple(fc.string(), fc.string()), { maxLength: 4 })
}, { requiredKeys: [] })

/** Any message: any topic text and bytes, properties, expiry and subscription ids. */
const fullMessageArb: fc.Arbitrary<Message> = fc.record({
  topic: fc.string({ unit: "grapheme" }),
  payload: fc.uint8Array({ maxLength: 64 }),
  qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
  retain: fc.boolean(),
  properties: propertiesArb,
  expiresAt: fc.integer({ min: 0, max: 2 ** 47 }),
  subscriptionIds: fc.array(fc.integer({ min: 1, max: 268_435_455 }), { minLength: 1, maxLength: 3 })
}, { requiredKeys: ["topic", "payload", "qos", "retain"] })

const subscriptionArb: fc.Arbitrary<Subscription> = fc.record({
  qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
  noLocal: fc.boolean(),
  retainAsPublished: fc.boolean(),
  retainHandling: fc.constantFrom(0 as const, 1 as const, 2 as const),
  identifier: fc.integer({ min: 1, max: 268_435_455 })
}, { requiredKeys: ["qos"] })

/** Sessions whose messages and subscriptions use every stored field. */
const fullSessionArb: fc.Arbitrary<SessionState> = fc
  .tuple(
    sessionStateArb({ v5: true }),
    fc.array(fullMessageArb, { maxLength: 5 }),
    fc.uniqueArray(fc.tuple(fc.string(), subscriptionArb), { selector: ([filter]) => filter, maxLength: 4 }),
    fc.option(fullMessageArb, { nil: undefined }),
    fc.option(fullMessageArb.filter((m) => m.qos > 0), { nil: undefined })
  )
  .map(([state, queued, subscriptions, will, inflight]) => ({
    ...state,
    queue: MessageQueue.from([...state.queue, ...queued]),
    subscriptions: new Map(subscriptions),
    will,
    inflight: inflight === undefined
      ? state.inflight
      : [...state.inflight.filter((e) => e.packetId !== 9), { packetId: 9, message: inflight, stage: "puback" as const }]
  }))

/** A comparable view: the queue as an array, bytes as plain arrays, absent and undefined keys alike. */
const plain = (value: unknown): unknown => {
  if (value instanceof MessageQueue) return plain(value.toArray())
  if (value instanceof Uint8Array) return Array.from(value)
  if (value instanceof Map) return plain(Array.from(value))
  if (Array.isArray(value)) return value.map(plain)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, plain(v)]))
  }
  return value
}

describe("SessionCodec", () => {
  it("decode(encode(session)) equals the session, every field and byte included", () => {
    fc.assert(
      fc.property(fullSessionArb, (state) => {
        const text = SessionCodec.encodeSession(state)
        const decoded = SessionCodec.decodeSessionSync(text)
        expect(plain(decoded)).toEqual(plain(state))
        expect(decoded.queue).toBeInstanceOf(MessageQueue)
        expect(decoded.subscriptions).toBeInstanceOf(Map)
        // stable: encoding the decoded session gives the same text
        expect(SessionCodec.encodeSession(decoded)).toBe(text)
      }),
      params()
    )
  })

  it("decode(encode(message)) equals the message, properties and payload bytes included", () => {
    fc.assert(
      fc.property(fullMessageArb, (message) => {
        const decoded = SessionCodec.decodeMessageSync(SessionCodec.encodeMessage(message))
        expect(plain(decoded)).toEqual(plain(message))
        expect(decoded.payload).toBeInstanceOf(Uint8Array)
      }),
      params()
    )
  })

  it("the stored text is exactly what SessionStateSchema / MessageSchema encode (the fast path agrees with the Schema)", () => {
    const bySchema = Schema.encodeSync(SessionCodec.SessionStateSchema)
    const messageBySchema = Schema.encodeSync(SessionCodec.MessageSchema)
    fc.assert(
      fc.property(fullSessionArb, fullMessageArb, (state, message) => {
        expect(JSON.parse(SessionCodec.encodeSession(state)).session).toEqual(JSON.parse(JSON.stringify(bySchema(state))))
        expect(JSON.parse(SessionCodec.encodeMessage(message)).message).toEqual(JSON.parse(JSON.stringify(messageBySchema(message))))
      }),
      params()
    )
  })

  it("reading a stored message by hand gives what MessageSchema decodes: for every encoded message, and for every tampered one it accepts", () => {
    const bySchema = Schema.decodeUnknownExit(SessionCodec.MessageSchema)
    // a stored message with one field replaced by anything JSON can hold
    const tamperedArb = fc.tuple(fullMessageArb, fc.constantFrom("topic", "payload", "qos", "retain", "properties", "expiresAt", "subscriptionIds"), fc.jsonValue())
    fc.assert(
      fc.property(tamperedArb, fc.boolean(), ([message, field, value], tamper) => {
        const stored = JSON.parse(SessionCodec.encodeMessage(message)).message
        // what this module writes is read by hand, not by the Schema
        expect(SessionCodec.byHand.message(stored)).toBeDefined()
        if (tamper) stored[field] = value
        const text = JSON.stringify({ v: SessionCodec.VERSION, message: stored })
        const expected = bySchema(JSON.parse(JSON.stringify(stored)))
        const decoded = Effect.runSyncExit(SessionCodec.decodeMessage(text))
        expect(Exit.isSuccess(decoded)).toBe(Exit.isSuccess(expected))
        if (Exit.isSuccess(decoded) && Exit.isSuccess(expected)) expect(plain(decoded.value)).toEqual(plain(expected.value))
      }),
      params()
    )
  })

  it("reading a stored session by hand gives what SessionStateSchema decodes: for every encoded session, and for every tampered one it accepts", () => {
    const bySchema = Schema.decodeUnknownExit(SessionCodec.SessionStateSchema)
    const fields = ["clientId", "clean", "expiryInterval", "subscriptions", "inflight", "queue", "dropped", "awaitingPubrel", "nextPacketId", "will", "willDelayInterval", "willAt", "receiveMaximum", "maximumPacketSize", "disconnectedAt"]
    const tamperedArb = fc.tuple(fullSessionArb, fc.constantFrom(...fields), fc.jsonValue())
    fc.assert(
      fc.property(tamperedArb, fc.boolean(), ([state, field, value], tamper) => {
        const stored = JSON.parse(SessionCodec.encodeSession(state)).session
        expect(SessionCodec.byHand.session(stored)).toBeDefined()
        if (tamper) stored[field] = value
        const text = JSON.stringify({ v: SessionCodec.VERSION, session: stored })
        const expected = bySchema(JSON.parse(JSON.stringify(stored)))
        const decoded = Effect.runSyncExit(SessionCodec.decodeSession(text))
        expect(Exit.isSuccess(decoded)).toBe(Exit.isSuccess(expected))
        if (Exit.isSuccess(decoded) && Exit.isSuccess(expected)) expect(plain(decoded.value)).toEqual(plain(expected.value))
      }),
      params()
    )
  })

  it("every stored text names its format version", () => {
    fc.assert(
      fc.property(fullMessageArb, (message) => {
        expect(JSON.parse(SessionCodec.encodeMessage(message)).v).toBe(SessionCodec.VERSION)
      }),
      params(0.2)
    )
  })

  it("a text of an unknown version, not JSON, or of the wrong shape is a SessionCodecError, never a session", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string().filter((s) => { try { JSON.parse(s); return false } catch { return true } }),
          fc.integer().filter((v) => v !== SessionCodec.VERSION).map((v) => JSON.stringify({ v, session: {} })),
          fc.jsonValue().map((session) => JSON.stringify({ v: SessionCodec.VERSION, session }))
        ),
        (text) => {
          const exit = Effect.runSyncExit(SessionCodec.decodeSession(text))
          expect(Exit.isFailure(exit)).toBe(true)
          expect(() => SessionCodec.decodeSessionSync(text)).toThrow(SessionCodec.SessionCodecError)
        }
      ),
      params(0.5)
    )
  })

  it("an unknown version is named in the error", () => {
    expect(() => SessionCodec.decodeMessageSync(JSON.stringify({ v: 99, message: {} }))).toThrow(/unknown format version 99/)
  })
})
