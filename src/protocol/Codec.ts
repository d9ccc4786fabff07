/**
 * Bytes ⇄ packets. Decoding is per connection (`Decoder.ts`, re-exported here); encoding of
 * PUBLISH is shared within a fan-out: a message is encoded once for the subscribers it is sent to
 * one after another (per QoS and protocol family) and each gets a copy with only its packet id and
 * DUP flag patched in.
 */
import mqttPacket from "mqtt-packet"
import type { Message } from "../session/Message.ts"
import type { Outgoing } from "../session/Transitions.ts"
import type { Packet } from "./Packet.ts"
import { encodePublishPacket, packetIdOffset, type PublishOptions } from "./Publish.ts"

// mqtt-packet's encoder otherwise fills a cache of 65,536 two-byte Buffers (~7 MB of heap, for
// the life of the process) at the first packet it writes; the broker encodes PUBLISH and acks
// itself and mqtt-packet only the rarer packets (one template per message), where a 2-byte
// allocation per number costs nothing measurable (issue 16: memory of the running
// broker). Set where the codec is loaded, so a broker embedded as a Layer gets it too.
mqttPacket.writeToStream.cacheNumbers = false

export { type Decoded, type DecodeErrorReason, type Decoder, makeDecoder, resume } from "./Decoder.ts"
export type { PublishOptions } from "./Publish.ts"

/** Encodes any packet (control packets: CONNACK, SUBACK, acks, PINGRESP …). */
export const encode = (packet: Packet, protocolVersion: number): Buffer =>
  mqttPacket.generate(packet, { protocolVersion })

const ACK_TYPES = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70, unsuback: 0xb0 } as const

/** The four-byte acks (PUBACK, PUBREC, PUBREL, PUBCOMP, 3.1.1 UNSUBACK), built without the generic encoder. */
export const encodeAck = (type: keyof typeof ACK_TYPES, packetId: number): Buffer => {
  const bytes = Buffer.allocUnsafe(4)
  bytes[0] = ACK_TYPES[type]
  bytes[1] = 2
  bytes[2] = packetId >> 8
  bytes[3] = packetId & 0xff
  return bytes
}

/** PINGRESP is always the same two bytes. */
export const PINGRESP: Buffer = Buffer.from([0xd0, 0x00])

interface Template {
  readonly bytes: Buffer
  /** Where the packet id sits (QoS > 0 only). */
  readonly packetIdOffset: number
  /** Whether `bytes` went out as the first subscriber's own packet (later ones copy it). */
  handedOut: boolean
}

/**
 * The template of the message encoded last, per protocol family. A fan-out encodes one message for
 * its subscribers one after another, so the last one is all the sharing needs; a message released
 * later from a session queue is encoded again, which costs about what a copy of a cached template
 * would, without a cache entry (a WeakMap entry per message cost more, GC included, than it saved:
 * most messages have one subscriber).
 */
let last3: Message | undefined
let template3: Template | undefined
let last5: Message | undefined
let template5: Template | undefined

const template = (message: Message, version: number): Template => {
  if (version === 5) {
    if (last5 !== message || template5 === undefined) (template5 = encodeTemplate(message, version)), (last5 = message)
    return template5
  }
  if (last3 !== message || template3 === undefined) (template3 = encodeTemplate(message, version)), (last3 = message)
  return template3
}

const encodeTemplate = (message: Message, version: number): Template => {
  const bytes = encodePublishPacket(message, version, 1, false)
  return { bytes, packetIdOffset: message.qos > 0 ? packetIdOffset(bytes) : 0, handedOut: false }
}

/** Whether this delivery's bytes are the same for every subscriber (so a shared template serves). */
const isShareable = (message: Message, version: number, options: PublishOptions | undefined): boolean =>
  version !== 5 ||
  (message.expiresAt === undefined && message.subscriptionIds === undefined && options?.topicAlias === undefined)

/**
 * Encodes a PUBLISH for one subscriber. 3.1/3.1.1 subscribers never see MQTT 5 properties. When
 * nothing is subscriber-specific the bytes come from a template encoded once per message.
 */
export const encodePublish = (
  message: Message,
  packetId: number | undefined,
  dup: boolean,
  version = 4,
  options?: PublishOptions
): Buffer => {
  let bytes: Buffer
  let offset = 0
  if (isShareable(message, version, options)) {
    const shared = template(message, version)
    if (message.qos === 0) return shared.bytes
    offset = shared.packetIdOffset
    if (!shared.handedOut) {
      // the first subscriber (often the only one) takes the template itself: no copy. Its bytes are
      // never changed after this, so later subscribers can still copy it and patch their own id.
      shared.handedOut = true
      bytes = shared.bytes
      if (dup) bytes[0] = bytes[0]! | 0x08
      bytes[offset] = packetId! >> 8
      bytes[offset + 1] = packetId! & 0xff
      return bytes
    }
    bytes = Buffer.allocUnsafe(shared.bytes.length)
    shared.bytes.copy(bytes)
    bytes[0] = dup ? bytes[0]! | 0x08 : bytes[0]! & ~0x08
  } else {
    return encodePublishPacket(message, version, packetId ?? 0, dup, options)
  }
  bytes[offset] = packetId! >> 8
  bytes[offset + 1] = packetId! & 0xff
  return bytes
}

/** Encodes what a session transition asked to send. */
export const encodeOutgoing = (outgoing: Outgoing, version = 4, options?: PublishOptions): Buffer =>
  outgoing._tag === "Publish"
    ? encodePublish(outgoing.message, outgoing.packetId, outgoing.dup, version, options)
    : encodeAck("pubrel", outgoing.packetId)
