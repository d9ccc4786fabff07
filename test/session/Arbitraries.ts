/**
 * fast-check arbitraries for session values: well-formed `SessionState`s (unique in-flight packet
 * ids, stages that fit the QoS, only PUBLISH-stage entries held back) for the provider round trip
 * and the pure-transition properties.
 */
import * as fc from "fast-check"
import type { Message, QoS } from "../../src/session/Message.ts"
import { MessageQueue } from "../../src/session/MessageQueue.ts"
import { EXPIRY_NEVER, type InflightMessage, type SessionState } from "../../src/session/SessionState.ts"
import { CLIENTS, FILTERS, TOPICS } from "./Model.ts"

export const qosArb: fc.Arbitrary<QoS> = fc.constantFrom<QoS>(0, 1, 2)

export const messageArb = (qos: fc.Arbitrary<QoS> = qosArb): fc.Arbitrary<Message> =>
  fc.record({ topic: fc.constantFrom(...TOPICS), payload: fc.uint8Array({ maxLength: 6 }), qos, retain: fc.boolean() })

/** Times near `NOW` (epoch ms), on both sides, for expiry deadlines. */
export const NOW = 1_000_000

/**
 * An MQTT 5 message: sometimes with an expiry time around `NOW` (on both sides), and payloads of
 * up to 24 bytes so that a small Maximum Packet Size rejects some.
 */
export const messageV5Arb = (qos: fc.Arbitrary<QoS> = qosArb): fc.Arbitrary<Message> =>
  fc
    .record({
      topic: fc.constantFrom(...TOPICS),
      payload: fc.uint8Array({ maxLength: 24 }),
      qos,
      retain: fc.boolean(),
      expiresAt: fc.option(fc.integer({ min: NOW - 3000, max: NOW + 3000 }), { nil: undefined, freq: 2 })
    })
    .map(({ expiresAt, ...m }) => (expiresAt === undefined ? m : { ...m, expiresAt }))

/** Packet ids near both ends of the range, so that wrap-around is exercised. */
export const packetIdArb = fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 65528, max: 65535 }))

/** An in-flight entry; with `heldBack`, a PUBLISH-stage one is sometimes held back by a smaller window (`awaitingResend`). */
export const inflightArb = (message: fc.Arbitrary<Message> = messageArb(fc.constantFrom<QoS>(1, 2)), heldBack = false): fc.Arbitrary<InflightMessage> =>
  fc
    .record({
      packetId: packetIdArb,
      message,
      released: fc.boolean(),
      held: heldBack ? fc.boolean() : fc.constant(false)
    })
    .map(({ held, message, packetId, released }): InflightMessage => {
      const stage = message.qos === 1 ? "puback" : released ? "pubcomp" : "pubrec"
      return held && stage !== "pubcomp" ? { packetId, message, stage, awaitingResend: true } : { packetId, message, stage }
    })

export interface StateShape {
  /** MQTT 5 fields too: expiring and larger messages, a pending delayed will, a Maximum Packet Size. */
  readonly v5?: boolean
  readonly maxInflight?: number
  readonly maxQueue?: number
  readonly minReceiveMaximum?: number
  readonly maxReceiveMaximum?: number
  /** In-flight PUBLISHes held back by a smaller window on resume, too (default: with `v5`). */
  readonly heldBack?: boolean
}

export const sessionStateArb = (shape: StateShape = {}): fc.Arbitrary<SessionState> => {
  const message = shape.v5 === true ? messageV5Arb : messageArb
  const entry = inflightArb(message(fc.constantFrom<QoS>(1, 2)), shape.heldBack ?? shape.v5 === true)
  return fc.record({
    clientId: fc.constantFrom(...CLIENTS),
    clean: fc.boolean(),
    expiryInterval: shape.v5 === true ? fc.constantFrom(0, 2, 5, 300, EXPIRY_NEVER) : fc.constantFrom(0, 300, EXPIRY_NEVER),
    subscriptions: fc
      .uniqueArray(fc.tuple(fc.constantFrom(...FILTERS), qosArb), { selector: ([filter]) => filter, maxLength: 4 })
      .map((entries) => new Map(entries.map(([filter, qos]) => [filter, { qos }] as const))),
    inflight: fc.uniqueArray(entry, { selector: (e) => e.packetId, maxLength: shape.maxInflight ?? 6 }),
    queue: fc.array(message(), { maxLength: shape.maxQueue ?? 6 }).map(MessageQueue.from),
    dropped: fc.nat(10),
    awaitingPubrel: fc.uniqueArray(packetIdArb, { maxLength: 3 }),
    nextPacketId: packetIdArb,
    will: fc.option(message(), { nil: undefined }),
    willDelayInterval: fc.constantFrom(0, 0, 5),
    willAt: shape.v5 === true ? fc.option(fc.integer({ min: NOW - 3000, max: NOW + 3000 }), { nil: undefined }) : fc.constant(undefined),
    receiveMaximum: fc.integer({ min: shape.minReceiveMaximum ?? 1, max: shape.maxReceiveMaximum ?? 8 }),
    maximumPacketSize: shape.v5 === true
      ? fc.option(fc.integer({ min: 8, max: 40 }), { nil: undefined })
      : fc.constant(undefined),
    disconnectedAt: shape.v5 === true
      ? fc.option(fc.integer({ min: NOW - 8000, max: NOW }), { nil: undefined })
      : fc.option(fc.nat(), { nil: undefined })
  })
}
