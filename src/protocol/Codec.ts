/**
 * Bytes ⇄ packets over mqtt-packet. Decoding is a stateful per-connection decoder;
 * encoding of PUBLISH is shared: a message is encoded once per (message, QoS) and each
 * subscriber gets a copy with only its packet id and DUP flag patched in.
 */
import mqttPacket from "mqtt-packet"
import type { Message } from "../session/Message.ts"
import type { Outgoing } from "../session/Transitions.ts"
import { type FrameError, FrameScanner } from "./Frame.ts"
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

/** Creates a decoder that refuses packets larger than `maxPacketSize` bytes. */
export const makeDecoder = (maxPacketSize: number): Decoder => {
  const scanner = new FrameScanner(maxPacketSize)
  const parser = mqttPacket.parser()
  let packets: Array<Packet> = []
  let error: DecodeError | undefined
  parser.on("packet", (packet) => {
    if (error === undefined) packets.push(packet)
  })
  parser.on("error", (cause: unknown) => {
    const message = cause instanceof Error ? cause.message : String(cause)
    error ??= message === "Invalid protocol version" ? { _tag: "UnsupportedProtocolVersion" } : { _tag: "Malformed", message }
  })
  return {
    decode: (chunk) => {
      if (error === undefined) {
        const frameError = scanner.scan(chunk)
        if (frameError !== undefined) error = frameError
        else parser.parse(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length))
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
}

/** Encoded PUBLISH templates per message object; messages are immutable so the cache never goes stale. */
const templates = new WeakMap<Message, Template>()

const remainingLengthBytes = (length: number): number =>
  length < 128 ? 1 : length < 16_384 ? 2 : length < 2_097_152 ? 3 : 4

const template = (message: Message): Template => {
  let cached = templates.get(message)
  if (cached === undefined) {
    const bytes = mqttPacket.generate({
      cmd: "publish",
      topic: message.topic,
      payload: Buffer.isBuffer(message.payload) ? message.payload : Buffer.from(message.payload),
      qos: message.qos,
      retain: message.retain,
      dup: false,
      ...(message.qos > 0 ? { messageId: 1 } : {})
    })
    const header = 1 + remainingLengthBytes(bytes.length - 2)
    cached = { bytes, packetIdOffset: header + 2 + Buffer.byteLength(message.topic) }
    templates.set(message, cached)
  }
  return cached
}

/** Encodes a PUBLISH for one subscriber (3.1.1/3.1 framing). */
export const encodePublish = (message: Message, packetId: number | undefined, dup: boolean): Buffer => {
  const { bytes, packetIdOffset } = template(message)
  if (message.qos === 0) return bytes
  const copy = Buffer.allocUnsafe(bytes.length)
  bytes.copy(copy)
  if (dup) copy[0] = copy[0]! | 0x08
  copy[packetIdOffset] = packetId! >> 8
  copy[packetIdOffset + 1] = packetId! & 0xff
  return copy
}

/** Encodes what a session transition asked to send. */
export const encodeOutgoing = (outgoing: Outgoing): Buffer =>
  outgoing._tag === "Publish"
    ? encodePublish(outgoing.message, outgoing.packetId, outgoing.dup)
    : encodeAck("pubrel", outgoing.packetId)
