/**
 * fast-check arbitraries for session values: well-formed `SessionState`s (unique in-flight packet
 * ids, stages that fit the QoS) for the provider round trip and the pure-transition properties.
 */
import * as fc from "fast-check"
import type { Message, QoS } from "../../src/session/Message.ts"
import { MessageQueue } from "../../src/session/MessageQueue.ts"
import { EXPIRY_NEVER, type InflightMessage, type SessionState } from "../../src/session/SessionState.ts"
import { CLIENTS, FILTERS, TOPICS } from "./Model.ts"

export const qosArb: fc.Arbitrary<QoS> = fc.constantFrom<QoS>(0, 1, 2)

export const messageArb = (qos: fc.Arbitrary<QoS> = qosArb): fc.Arbitrary<Message> =>
  fc.record({ topic: fc.constantFrom(...TOPICS), payload: fc.uint8Array({ maxLength: 6 }), qos, retain: fc.boolean() })

/** Packet ids near both ends of the range, so that wrap-around is exercised. */
export const packetIdArb = fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 65528, max: 65535 }))

export const inflightArb: fc.Arbitrary<InflightMessage> = fc
  .record({ packetId: packetIdArb, message: messageArb(fc.constantFrom<QoS>(1, 2)), released: fc.boolean() })
  .map(({ message, packetId, released }) => ({
    packetId,
    message,
    stage: message.qos === 1 ? "puback" : released ? "pubcomp" : "pubrec"
  }))

export interface StateShape {
  readonly maxInflight?: number
  readonly maxQueue?: number
  readonly minReceiveMaximum?: number
  readonly maxReceiveMaximum?: number
}

export const sessionStateArb = (shape: StateShape = {}): fc.Arbitrary<SessionState> =>
  fc.record({
    clientId: fc.constantFrom(...CLIENTS),
    clean: fc.boolean(),
    expiryInterval: fc.constantFrom(0, 300, EXPIRY_NEVER),
    subscriptions: fc
      .uniqueArray(fc.tuple(fc.constantFrom(...FILTERS), qosArb), { selector: ([filter]) => filter, maxLength: 4 })
      .map((entries) => new Map(entries.map(([filter, qos]) => [filter, { qos }] as const))),
    inflight: fc.uniqueArray(inflightArb, { selector: (e) => e.packetId, maxLength: shape.maxInflight ?? 6 }),
    queue: fc.array(messageArb(), { maxLength: shape.maxQueue ?? 6 }).map(MessageQueue.from),
    dropped: fc.nat(10),
    awaitingPubrel: fc.uniqueArray(packetIdArb, { maxLength: 3 }),
    nextPacketId: packetIdArb,
    will: fc.option(messageArb(), { nil: undefined }),
    willDelayInterval: fc.constantFrom(0, 0, 5),
    willAt: fc.constant(undefined),
    receiveMaximum: fc.integer({ min: shape.minReceiveMaximum ?? 1, max: shape.maxReceiveMaximum ?? 8 }),
    maximumPacketSize: fc.constant(undefined),
    disconnectedAt: fc.option(fc.nat(), { nil: undefined })
  })
