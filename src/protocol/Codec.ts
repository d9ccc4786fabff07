/**
 * Bytes ⇄ packets. A stateful per-connection decoder splits frames, decodes the hot packets
 * (PUBLISH, acks, PINGREQ) itself and hands the rest to mqtt-packet; encoding of PUBLISH is
 * shared: a message is encoded once per (message, QoS, protocol family) and each subscriber
 * gets a copy with only its packet id and DUP flag patched in.
 */
import mqttPacket from "mqtt-packet"
import type { Message } from "../session/Message.ts"
import type { Outgoing } from "../session/Transitions.ts"
import { type FrameError, FrameSplitter } from "./Frame.ts"
import { decodePublishPacket, encodePublishPacket, packetIdOffset, type PublishOptions } from "./Publish.ts"

export type { PublishOptions } from "./Publish.ts"
import type { Packet } from "./Packet.ts"

/** Why decoding failed: a framing error or a packet mqtt-packet refused. */
export type DecodeError =
  | FrameError
  | { readonly _tag: "Malformed"; readonly message: string }
  /** A CONNECT with a protocol level this broker does not speak: answered with CONNACK 1, not just closed. */
  | { readonly _tag: "UnsupportedProtocolVersion" }

/** Result of feeding a chunk: the complete packets, and the error that stopped decoding, if any. */
export interface Decoded {
  readonly packets: ReadonlyArray<Packet>
  readonly error: DecodeError | undefined
}

/** A per-connection decoder. */
export interface Decoder {
  readonly decode: (chunk: Uint8Array) => Decoded
}

const ACK_COMMANDS = [undefined, undefined, undefined, undefined, "puback", "pubrec", "pubrel", "pubcomp"] as const

/**
 * The packets every message moves through (PUBLISH, the four acks, PINGREQ), decoded here;
 * undefined hands the frame to mqtt-packet (everything else, and anything unusual).
 */
const decodeHot = (frame: Buffer, version: number): Packet | string | undefined => {
  const type = frame[0]! >> 4
  if (type === 3) return decodePublishPacket(frame, version) as Packet | string
  if (type >= 4 && type <= 7) {
    // fixed header flags: 0010 for PUBREL, 0000 for the others; exactly 2 bytes in 3.1.1
    if ((frame[0]! & 0x0f) !== (type === 6 ? 2 : 0) || frame[1]! & 0x80) return undefined
    if (frame[1] !== 2 && (version !== 5 || frame[1]! < 2)) return undefined
    return { cmd: ACK_COMMANDS[type]!, messageId: (frame[2]! << 8) | frame[3]! } as Packet
  }
  if (frame[0] === 0xc0 && frame[1] === 0) return { cmd: "pingreq" }
  return undefined
}

/** What a shared mqtt-packet parser made of one frame. */
interface SharedParser {
  readonly parser: ReturnType<typeof mqttPacket.parser>
  packet: Packet | undefined
  error: DecodeError | undefined
}

const makeSharedParser = (version: number): SharedParser => {
  const shared: SharedParser = {
    parser: mqttPacket.parser(version === 0 ? {} : { protocolVersion: version }),
    packet: undefined,
    error: undefined
  }
  shared.parser.on("packet", (packet) => {
    shared.packet = packet
  })
  shared.parser.on("error", (cause: unknown) => {
    const message = cause instanceof Error ? cause.message : String(cause)
    shared.error ??= message === "Invalid protocol version" ? { _tag: "UnsupportedProtocolVersion" } : { _tag: "Malformed", message }
  })
  return shared
}

/**
 * mqtt-packet parsers shared by every connection, one per protocol version (0: before CONNECT):
 * each parse is one whole frame and runs synchronously, so no state is carried from one call to
 * the next, and a connection does not pay for a parser of its own.
 */
const sharedParsers = new Map<number, SharedParser>()

/** Parses one whole frame with the shared parser for `version`. */
const parseFrame = (frame: Buffer, version: number): Packet | DecodeError => {
  let shared = sharedParsers.get(version)
  if (shared === undefined) {
    shared = makeSharedParser(version)
    sharedParsers.set(version, shared)
  }
  shared.packet = undefined
  shared.error = undefined
  shared.parser.parse(frame)
  const { error, packet } = shared
  shared.packet = undefined
  if (error !== undefined) return error
  if (packet !== undefined) return packet
  // a whole frame always yields a packet or an error; if not, never let this parser's state reach another frame
  sharedParsers.delete(version)
  return { _tag: "Malformed", message: "incomplete packet" }
}

/** Creates a decoder that refuses packets larger than `maxPacketSize` bytes. */
export const makeDecoder = (maxPacketSize: number): Decoder => {
  const splitter = new FrameSplitter(maxPacketSize)
  const frames: Array<Buffer> = []
  let packets: Array<Packet> = []
  let error: DecodeError | undefined
  // known once CONNECT is parsed; before it, every frame goes to the pre-CONNECT parser
  let version = 0
  return {
    decode: (chunk) => {
      if (error === undefined) {
        const frameError = splitter.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length), frames)
        for (const frame of frames) {
          if (error !== undefined) break
          const hot = version === 0 ? undefined : decodeHot(frame, version)
          const decoded = hot ?? parseFrame(frame, version)
          if (typeof decoded === "string") error = { _tag: "Malformed", message: decoded }
          else if ("cmd" in decoded) {
            if (decoded.cmd === "connect" && version === 0) version = decoded.protocolVersion ?? 4
            packets.push(decoded)
          } else error = decoded
        }
        frames.length = 0
        if (frameError !== undefined) error ??= frameError
      }
      const result: Decoded = { packets, error }
      packets = []
      return result
    }
  }
}

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

/** Encoded PUBLISH templates per message object and protocol family; messages are immutable so they never go stale. */
const templates3 = new WeakMap<Message, Template>()
const templates5 = new WeakMap<Message, Template>()

const template = (message: Message, version: number): Template => {
  const cache = version === 5 ? templates5 : templates3
  let cached = cache.get(message)
  if (cached === undefined) {
    const bytes = encodePublishPacket(message, version, 1, false)
    cached = { bytes, packetIdOffset: message.qos > 0 ? packetIdOffset(bytes) : 0, handedOut: false }
    cache.set(message, cached)
  }
  return cached
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
