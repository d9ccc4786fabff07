/**
 * PUBLISH on the wire, written by hand: it is the one packet on the hot path, and MQTT 5
 * user properties must keep their wire order (mqtt-packet groups repeated names), so the
 * broker encodes PUBLISH itself in one allocation and re-reads user properties in order.
 */
import { isUtf8 } from "node:buffer"
import type { Message, UserProperty } from "../session/Message.ts"
import { varintSize } from "../session/PacketSize.ts"
import { type Malformed, malformed } from "./DecodeError.ts"

/** Per-delivery MQTT 5 options: the broker's topic alias for this client, and the clock for expiry. */
export interface PublishOptions {
  /** Topic alias to send; with `aliasOnly` the topic name is left empty (the client knows the alias). */
  readonly topicAlias?: number | undefined
  readonly aliasOnly?: boolean | undefined
  /**
   * Now (epoch ms, from the caller's `Clock`), to send the remaining Message Expiry Interval: an
   * expiring message encoded without it goes out without the interval.
   */
  readonly now?: number | undefined
}

const PAYLOAD_FORMAT = 0x01
const MESSAGE_EXPIRY = 0x02
const CONTENT_TYPE = 0x03
const RESPONSE_TOPIC = 0x08
const CORRELATION_DATA = 0x09
const SUBSCRIPTION_ID = 0x0b
const TOPIC_ALIAS = 0x23
const USER_PROPERTY = 0x26

const EMPTY = Buffer.alloc(0)

const utf8 = (text: string): number => Buffer.byteLength(text, "utf8")

/**
 * Whether `bytes` are well-formed UTF-8 without U+0000 [MQTT-1.5.3-1, -2]. Topics are mostly
 * ASCII: checked in a loop here, the rest by the native validator.
 */
const isCleanUtf8 = (bytes: Uint8Array): boolean => {
  let ascii = true
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!
    if (byte === 0) return false
    if (byte >= 0x80) ascii = false
  }
  return ascii || isUtf8(bytes)
}

/**
 * A PUBLISH under construction: its size is known before the one buffer is allocated. Bytes are
 * stored directly: `Buffer#writeUInt16BE` and `Buffer#write` validate their arguments through
 * wrappers that allocate on every call (~160 bytes per PUBLISH encoded, `latency-q0` heap
 * sampling), which at a few thousand messages a second is a scavenge more every couple of seconds.
 */
class Writer {
  readonly bytes: Buffer
  offset = 0
  constructor(size: number) {
    this.bytes = Buffer.allocUnsafe(size)
  }
  byte(value: number): void {
    this.bytes[this.offset++] = value
  }
  u16(value: number): void {
    this.bytes[this.offset++] = value >>> 8
    this.bytes[this.offset++] = value & 0xff
  }
  u32(value: number): void {
    this.u16(value >>> 16)
    this.u16(value & 0xffff)
  }
  varint(value: number): void {
    do {
      let byte = value % 128
      value = Math.floor(value / 128)
      if (value > 0) byte |= 0x80
      this.byte(byte)
    } while (value > 0)
  }
  /** A length-prefixed UTF-8 string; an ASCII one (topics mostly are) copied char by char. */
  string(text: string): void {
    const bytes = this.bytes
    const start = this.offset + 2
    let length = text.length
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i)
      if (code >= 0x80) {
        length = bytes.write(text, start, "utf8")
        break
      }
      bytes[start + i] = code
    }
    this.u16(length)
    this.offset += length
  }
  raw(data: Uint8Array): void {
    this.bytes.set(data, this.offset)
    this.offset += data.length
  }
}

/** The remaining Message Expiry Interval: what is left, never cut to 0 once the message is on its way. */
const remainingExpiry = (message: Message, now: number | undefined): number | undefined =>
  message.expiresAt === undefined || now === undefined ? undefined : Math.max(1, Math.ceil((message.expiresAt - now) / 1000))

/** Encodes a PUBLISH (3.1/3.1.1 framing below version 5: no properties). `packetId` is ignored at QoS 0. */
export const encodePublishPacket = (
  message: Message,
  version: number,
  packetId: number,
  dup: boolean,
  options?: PublishOptions
): Buffer => {
  const v5 = version === 5
  const topic = options?.aliasOnly === true ? "" : message.topic
  const p = message.properties
  const expiry = v5 ? remainingExpiry(message, options?.now) : undefined
  let properties = 0
  if (v5) {
    if (p?.payloadFormatIndicator !== undefined) properties += 2
    if (expiry !== undefined) properties += 5
    if (options?.topicAlias !== undefined) properties += 3
    if (p?.contentType !== undefined) properties += 3 + utf8(p.contentType)
    if (p?.responseTopic !== undefined) properties += 3 + utf8(p.responseTopic)
    if (p?.correlationData !== undefined) properties += 3 + p.correlationData.length
    for (const [name, value] of p?.userProperties ?? []) properties += 5 + utf8(name) + utf8(value)
    for (const id of message.subscriptionIds ?? []) properties += 1 + varintSize(id)
  }
  const remaining = 2 + utf8(topic) + (message.qos > 0 ? 2 : 0) + (v5 ? varintSize(properties) + properties : 0) +
    message.payload.length
  const w = new Writer(1 + varintSize(remaining) + remaining)
  w.byte(0x30 | (dup ? 0x08 : 0) | (message.qos << 1) | (message.retain ? 0x01 : 0))
  w.varint(remaining)
  w.string(topic)
  if (message.qos > 0) w.u16(packetId)
  if (v5) {
    w.varint(properties)
    if (p?.payloadFormatIndicator !== undefined) (w.byte(PAYLOAD_FORMAT), w.byte(p.payloadFormatIndicator ? 1 : 0))
    if (expiry !== undefined) (w.byte(MESSAGE_EXPIRY), w.u32(expiry))
    if (options?.topicAlias !== undefined) (w.byte(TOPIC_ALIAS), w.u16(options.topicAlias))
    if (p?.contentType !== undefined) (w.byte(CONTENT_TYPE), w.string(p.contentType))
    if (p?.responseTopic !== undefined) (w.byte(RESPONSE_TOPIC), w.string(p.responseTopic))
    if (p?.correlationData !== undefined) (w.byte(CORRELATION_DATA), w.u16(p.correlationData.length), w.raw(p.correlationData))
    for (const [name, value] of p?.userProperties ?? []) (w.byte(USER_PROPERTY), w.string(name), w.string(value))
    for (const id of message.subscriptionIds ?? []) (w.byte(SUBSCRIPTION_ID), w.varint(id))
  }
  w.raw(message.payload)
  return w.bytes
}

/** Where the packet id sits in an encoded PUBLISH (QoS > 0). */
export const packetIdOffset = (bytes: Uint8Array): number => {
  let i = 1
  while (bytes[i]! & 0x80) i++
  return i + 1 + 2 + ((bytes[i + 1]! << 8) | bytes[i + 2]!)
}

/**
 * The user properties of an MQTT 5 PUBLISH packet, in wire order (repeated names included).
 * The packet was already validated by the parser; anything unexpected yields what was read so far.
 */
export const readUserProperties = (frame: Uint8Array): Array<UserProperty> => {
  const pairs: Array<UserProperty> = []
  const qos = (frame[0]! >> 1) & 0x03
  let i = 1
  while (frame[i]! & 0x80) i++
  i++
  const u16 = () => (frame[i]! << 8) | frame[i + 1]!
  const text = () => {
    const length = u16()
    const value = Buffer.from(frame.buffer, frame.byteOffset + i + 2, length).toString("utf8")
    i += 2 + length
    return value
  }
  const varint = () => {
    let value = 0
    let multiplier = 1
    let byte: number
    do {
      byte = frame[i++]!
      value += (byte & 0x7f) * multiplier
      multiplier *= 128
    } while (byte & 0x80)
    return value
  }
  i += 2 + u16() // topic
  if (qos > 0) i += 2
  const end = varint() + i
  while (i < end) {
    const id = varint()
    switch (id) {
      case PAYLOAD_FORMAT:
        i += 1
        break
      case MESSAGE_EXPIRY:
        i += 4
        break
      case TOPIC_ALIAS:
        i += 2
        break
      case SUBSCRIPTION_ID:
        varint()
        break
      case CONTENT_TYPE:
      case RESPONSE_TOPIC:
      case CORRELATION_DATA:
        i += 2 + u16()
        break
      case USER_PROPERTY: {
        const name = text()
        pairs.push([name, text()])
        break
      }
      default:
        return pairs
    }
  }
  return pairs
}

/** A PUBLISH as decoded here: mqtt-packet's shape, plus user properties in wire order. */
export interface DecodedPublish {
  readonly cmd: "publish"
  readonly topic: string
  readonly payload: Buffer
  readonly qos: 0 | 1 | 2
  readonly dup: boolean
  readonly retain: boolean
  readonly messageId?: number
  readonly properties?: {
    payloadFormatIndicator?: boolean
    messageExpiryInterval?: number
    topicAlias?: number
    responseTopic?: string
    correlationData?: Buffer
    userProperties?: Record<string, string | Array<string>>
    subscriptionIdentifier?: number | Array<number>
    contentType?: string
  }
  readonly orderedUserProperties?: Array<UserProperty>
}

/**
 * The payload as the message keeps it: a view when it is nearly all of the memory behind it (a
 * large packet received into its own buffer: copying 16 MB again only feeds the GC), otherwise a
 * copy, so a retained or queued message never pins a socket read buffer much larger than itself.
 */
const ownPayload = (frame: Buffer, start: number): Buffer => {
  const length = frame.length - start
  if (frame.buffer.byteLength - length <= 4096) return frame.subarray(start)
  // copied straight from the frame: no view made only to be copied
  const payload = Buffer.allocUnsafe(length)
  frame.copy(payload, 0, start)
  return payload
}

/**
 * `decodePublishPacket` for MQTT 3.1/3.1.1 (no properties), from offset `i` after the fixed
 * header: the same checks and result without the readers MQTT 5's property list needs, so
 * decoding a message allocates its packet, its topic and its payload only.
 */
const decodePublish3 = (frame: Buffer, flags: number, qos: number, i: number): DecodedPublish | Malformed => {
  const end = frame.length
  if (i + 2 > end) return malformed("PUBLISH too short")
  const topicStart = i + 2
  const topicEnd = topicStart + ((frame[i]! << 8) | frame[i + 1]!)
  if (topicEnd > end) return malformed("PUBLISH field overruns the packet")
  if (!isCleanUtf8Range(frame, topicStart, topicEnd)) return malformed("ill-formed UTF-8 or U+0000 in a PUBLISH string")
  const topic = frame.toString("utf8", topicStart, topicEnd)
  const dup = (flags & 0x08) !== 0
  const retain = (flags & 0x01) !== 0
  if (qos === 0) return { cmd: "publish", topic, payload: ownPayload(frame, topicEnd), qos, dup, retain }
  if (topicEnd + 2 > end) return malformed("PUBLISH too short")
  const messageId = (frame[topicEnd]! << 8) | frame[topicEnd + 1]!
  if (messageId === 0) return malformed("PUBLISH with QoS > 0 and packet identifier 0")
  return { cmd: "publish", topic, payload: ownPayload(frame, topicEnd + 2), qos: qos as 1 | 2, dup, retain, messageId }
}

/** `isCleanUtf8` of `bytes[start..end)`, without a view for an ASCII string (most topics). */
const isCleanUtf8Range = (bytes: Buffer, start: number, end: number): boolean => {
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!
    if (byte === 0) return false
    if (byte >= 0x80) return isCleanUtf8(bytes.subarray(start, end))
  }
  return true
}

/**
 * Decodes a whole PUBLISH frame (the hot path skips mqtt-packet). Returns the `Malformed` reason
 * when the packet is malformed or forbidden (never throws); `fromServer` accepts what only a
 * broker may send (Subscription Identifiers). The payload is kept as `ownPayload` says.
 */
export const decodePublishPacket = (frame: Buffer, version: number, fromServer = false): DecodedPublish | Malformed => {
  const flags = frame[0]! & 0x0f
  const qos = (flags >> 1) & 0x03
  if (qos === 3) return malformed("PUBLISH with QoS 3")
  let i = 1
  while (frame[i]! & 0x80) i++
  i++
  if (version !== 5) return decodePublish3(frame, flags, qos, i)
  const end = frame.length
  // the first field that did not fit: the readers below then return placeholders and every
  // caller checks `broken` before using what they read
  let broken: string | undefined
  const u16 = (): number => {
    if (i + 2 > end) {
      broken ??= "PUBLISH too short"
      return 0
    }
    const value = (frame[i]! << 8) | frame[i + 1]!
    i += 2
    return value
  }
  const bytes = (length: number): Buffer => {
    if (broken !== undefined || i + length > end) {
      broken ??= "PUBLISH field overruns the packet"
      return EMPTY
    }
    const value = frame.subarray(i, i + length)
    i += length
    return value
  }
  const text = (): string => {
    const raw = bytes(u16())
    if (broken !== undefined) return ""
    if (!isCleanUtf8(raw)) {
      broken = "ill-formed UTF-8 or U+0000 in a PUBLISH string"
      return ""
    }
    return raw.toString("utf8")
  }
  const varint = (): number => {
    let value = 0
    let multiplier = 1
    for (let n = 0; n < 4; n++) {
      if (i >= end) {
        broken ??= "PUBLISH too short"
        return 0
      }
      const byte = frame[i++]!
      value += (byte & 0x7f) * multiplier
      if ((byte & 0x80) === 0) return value
      multiplier *= 128
    }
    broken ??= "malformed variable byte integer"
    return 0
  }
  const topic = text()
  const messageId = qos > 0 ? u16() : undefined
  if (broken !== undefined) return malformed(broken)
  if (messageId === 0) return malformed("PUBLISH with QoS > 0 and packet identifier 0")
  let properties: DecodedPublish["properties"]
  let ordered: Array<UserProperty> | undefined
  if (version === 5) {
    const propertiesEnd = varint() + i
    if (broken !== undefined) return malformed(broken)
    if (propertiesEnd > end) return malformed("PUBLISH properties overrun the packet")
    if (propertiesEnd > i) properties = {}
    // bit per property id seen: all but user properties may appear once (MQTT 5 §2.2.2.2)
    let seen = 0
    while (i < propertiesEnd) {
      const id = varint()
      if (broken !== undefined) return malformed(broken)
      const p = properties!
      if (id !== USER_PROPERTY && id < 53) {
        const bit = 2 ** id
        if (Math.floor(seen / bit) % 2 === 1) return malformed(`PUBLISH property 0x${id.toString(16)} more than once`)
        seen += bit
      }
      switch (id) {
        case PAYLOAD_FORMAT: {
          const format = bytes(1)[0]
          if (format !== undefined && format > 1) return malformed("Payload Format Indicator other than 0 or 1")
          p.payloadFormatIndicator = format === 1
          break
        }
        case MESSAGE_EXPIRY: {
          const interval = bytes(4)
          if (broken === undefined) p.messageExpiryInterval = interval.readUInt32BE(0)
          break
        }
        case CONTENT_TYPE:
          p.contentType = text()
          break
        case RESPONSE_TOPIC:
          p.responseTopic = text()
          break
        case CORRELATION_DATA:
          p.correlationData = Buffer.from(bytes(u16()))
          break
        case SUBSCRIPTION_ID:
          // only a broker sends these [MQTT-3.3.4-6]
          if (!fromServer) return malformed("Subscription Identifier in a client's PUBLISH")
          p.subscriptionIdentifier = varint()
          break
        case TOPIC_ALIAS:
          p.topicAlias = u16()
          break
        case USER_PROPERTY: {
          const name = text()
          const value = text()
          if (broken !== undefined) break
          ;(ordered ??= []).push([name, value])
          const grouped = (p.userProperties ??= {})
          const previous = grouped[name]
          grouped[name] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value]
          break
        }
        default:
          return malformed(`unknown PUBLISH property 0x${id.toString(16)}`)
      }
      if (broken !== undefined) return malformed(broken)
    }
    if (i !== propertiesEnd) return malformed("PUBLISH properties overrun their length")
  }
  return {
    cmd: "publish",
    topic,
    payload: ownPayload(frame, i),
    qos: qos as 0 | 1 | 2,
    dup: (flags & 0x08) !== 0,
    retain: (flags & 0x01) !== 0,
    ...(messageId !== undefined ? { messageId } : {}),
    ...(properties !== undefined ? { properties } : {}),
    ...(ordered !== undefined ? { orderedUserProperties: ordered } : {})
  }
}
