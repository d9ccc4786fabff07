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

/** Encoded PUBLISH templates per message object and protocol family; messages are immutable so they never go stale. */
const templates3 = new WeakMap<Message, Template>()
const templates5 = new WeakMap<Message, Template>()

const remainingLengthBytes = (length: number): number =>
  length < 128 ? 1 : length < 16_384 ? 2 : length < 2_097_152 ? 3 : 4

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)

/** Per-delivery MQTT 5 options: the broker's topic alias for this client, and the clock for expiry. */
export interface PublishOptions {
  /** Topic alias to send; with `aliasOnly` the topic name is left empty (the client knows the alias). */
  readonly topicAlias?: number | undefined
  readonly aliasOnly?: boolean | undefined
  /** Now (epoch ms), to send the remaining Message Expiry Interval. */
  readonly now?: number | undefined
}

/** The MQTT 5 PUBLISH properties for one delivery. */
const publishProperties = (message: Message, options: PublishOptions | undefined) => {
  const p = message.properties
  const properties: Record<string, unknown> = {}
  if (p !== undefined) {
    if (p.payloadFormatIndicator !== undefined) properties["payloadFormatIndicator"] = p.payloadFormatIndicator
    if (p.contentType !== undefined) properties["contentType"] = p.contentType
    if (p.responseTopic !== undefined) properties["responseTopic"] = p.responseTopic
    if (p.correlationData !== undefined) properties["correlationData"] = toBuffer(p.correlationData)
    if (p.userProperties !== undefined) properties["userProperties"] = p.userProperties
  }
  if (message.expiresAt !== undefined) {
    // what is left of the interval; a message already on its way is not cut short to 0
    properties["messageExpiryInterval"] = Math.max(1, Math.ceil((message.expiresAt - (options?.now ?? Date.now())) / 1000))
  }
  if (message.subscriptionIds !== undefined && message.subscriptionIds.length > 0) {
    properties["subscriptionIdentifier"] = message.subscriptionIds.length === 1
      ? message.subscriptionIds[0]
      : [...message.subscriptionIds]
  }
  if (options?.topicAlias !== undefined) properties["topicAlias"] = options.topicAlias
  return properties
}

const generatePublish = (message: Message, version: number, options: PublishOptions | undefined, packetId: number) =>
  mqttPacket.generate({
    cmd: "publish",
    topic: options?.aliasOnly === true ? "" : message.topic,
    payload: toBuffer(message.payload),
    qos: message.qos,
    retain: message.retain,
    dup: false,
    ...(message.qos > 0 ? { messageId: packetId } : {}),
    ...(version === 5 ? { properties: publishProperties(message, options) } : {})
  } as Packet, { protocolVersion: version })

const template = (message: Message, version: number): Template => {
  const cache = version === 5 ? templates5 : templates3
  let cached = cache.get(message)
  if (cached === undefined) {
    const bytes = generatePublish(message, version === 5 ? 5 : 4, undefined, 1)
    const header = 1 + remainingLengthBytes(bytes.length - 2)
    cached = { bytes, packetIdOffset: header + 2 + Buffer.byteLength(message.topic) }
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
  let packetIdOffset = 0
  if (isShareable(message, version, options)) {
    const shared = template(message, version)
    if (message.qos === 0) return shared.bytes
    bytes = Buffer.allocUnsafe(shared.bytes.length)
    shared.bytes.copy(bytes)
    packetIdOffset = shared.packetIdOffset
  } else {
    bytes = generatePublish(message, version, options, packetId ?? 1)
    if (message.qos === 0) return bytes
    packetIdOffset = 1 + remainingLengthBytes(bytes.length - 2) + 2 +
      (options?.aliasOnly === true ? 0 : Buffer.byteLength(message.topic))
  }
  if (dup) bytes[0] = bytes[0]! | 0x08
  bytes[packetIdOffset] = packetId! >> 8
  bytes[packetIdOffset + 1] = packetId! & 0xff
  return bytes
}

/** Encodes what a session transition asked to send. */
export const encodeOutgoing = (outgoing: Outgoing, version = 4, options?: PublishOptions): Buffer =>
  outgoing._tag === "Publish"
    ? encodePublish(outgoing.message, outgoing.packetId, outgoing.dup, version, options)
    : encodeAck("pubrel", outgoing.packetId)
