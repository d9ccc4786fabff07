/**
 * A batch of forwarded messages as bytes: what one entry of a node's stream carries (field `b`).
 * Cheaper to cross nodes than `Envelope.encodeBatch`'s JSON (each message `SessionCodec`'s JSON
 * with the payload in base64, inside a JSON array): the payload is copied once, as raw bytes,
 * strings are UTF-8 with a length, and nothing is parsed on the way back but lengths.
 *
 * Layout (lengths and counts are unsigned LEB128 varints, strings UTF-8 bytes after their length):
 *
 * ```
 * batch  := 0xB2 count entry*               0xB2: this format; a JSON batch starts with '['
 * entry  := length body                     body is `length` bytes: a bad one is skipped whole
 * body   := flags topic [publisherId] [shared] [expiresAt] [subscriptionIds] [properties] payload
 *   flags: bits 0-1 QoS, 2 retain, 3 publisherId, 4 shared, 5 expiresAt, 6 subscriptionIds, 7 properties
 *   shared := count string*      expiresAt := float64 LE      subscriptionIds := count varint*
 *   payload: the rest of the body
 * properties := pflags [contentType] [responseTopic] [correlationData] [userProperties]
 *   pflags: bit 0 payloadFormatIndicator given, 1 its value, 2 contentType, 3 responseTopic,
 *   4 correlationData (length, bytes), 5 userProperties (count, (name, value)*)
 * ```
 *
 * Decoding never throws: bytes of no known shape are `undefined` (no batch) or a skipped entry
 * (counted), the entries around it still read.
 *
 * @module
 */
import type { Message, PublishProperties, QoS, UserProperty } from "../session/Message.ts"
import type { Forwarded } from "./Forwarded.ts"

/** The first byte of a binary batch: never the first byte of a JSON text. */
export const MAGIC = 0xb2

const QOS_MASK = 0b11
const RETAIN = 1 << 2
const PUBLISHER = 1 << 3
const SHARED = 1 << 4
const EXPIRES = 1 << 5
const SUBSCRIPTION_IDS = 1 << 6
const PROPERTIES = 1 << 7

const PFI_GIVEN = 1 << 0
const PFI_VALUE = 1 << 1
const CONTENT_TYPE = 1 << 2
const RESPONSE_TOPIC = 1 << 3
const CORRELATION_DATA = 1 << 4
const USER_PROPERTIES = 1 << 5
const KNOWN_PFLAGS = 0b111111

/** Bytes a varint of `n` takes. */
const varintSize = (n: number): number => {
  let size = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    size++
  }
  return size
}

const stringSize = (text: string): number => {
  const bytes = Buffer.byteLength(text)
  return varintSize(bytes) + bytes
}

const propertiesSize = (properties: PublishProperties): number => {
  let size = 1
  if (properties.contentType !== undefined) size += stringSize(properties.contentType)
  if (properties.responseTopic !== undefined) size += stringSize(properties.responseTopic)
  if (properties.correlationData !== undefined) size += varintSize(properties.correlationData.length) + properties.correlationData.length
  if (properties.userProperties !== undefined) {
    size += varintSize(properties.userProperties.length)
    for (const [name, value] of properties.userProperties) size += stringSize(name) + stringSize(value)
  }
  return size
}

/** The size of an entry's body. */
const bodySize = ({ message, publisherId, shared }: Forwarded): number => {
  let size = 1 + stringSize(message.topic) + message.payload.length
  if (publisherId !== undefined) size += stringSize(publisherId)
  if (shared.length > 0) {
    size += varintSize(shared.length)
    for (const key of shared) size += stringSize(key)
  }
  if (message.expiresAt !== undefined) size += 8
  if (message.subscriptionIds !== undefined) {
    size += varintSize(message.subscriptionIds.length)
    for (const id of message.subscriptionIds) size += varintSize(id)
  }
  if (message.properties !== undefined) size += propertiesSize(message.properties)
  return size
}

/** Writes into one buffer sized beforehand. */
class Writer {
  readonly buffer: Buffer
  offset = 0
  constructor(buffer: Buffer) {
    this.buffer = buffer
  }

  byte(value: number): void {
    this.buffer[this.offset++] = value
  }

  varint(n: number): void {
    while (n >= 0x80) {
      this.buffer[this.offset++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    this.buffer[this.offset++] = n
  }

  string(text: string): void {
    const bytes = Buffer.byteLength(text)
    this.varint(bytes)
    this.offset += this.buffer.write(text, this.offset, bytes, "utf8")
  }

  bytes(data: Uint8Array): void {
    this.buffer.set(data, this.offset)
    this.offset += data.length
  }
}

/** Non-negative integers that fit a varint as written here (subscription identifiers, lengths). */
const isVarint = (n: number): boolean => Number.isSafeInteger(n) && n >= 0

const writeEntry = (out: Writer, forwarded: Forwarded, size: number): void => {
  const { message, publisherId, shared } = forwarded
  const { properties, subscriptionIds, expiresAt } = message
  out.varint(size)
  out.byte(
    (message.qos & QOS_MASK) |
      (message.retain ? RETAIN : 0) |
      (publisherId !== undefined ? PUBLISHER : 0) |
      (shared.length > 0 ? SHARED : 0) |
      (expiresAt !== undefined ? EXPIRES : 0) |
      (subscriptionIds !== undefined ? SUBSCRIPTION_IDS : 0) |
      (properties !== undefined ? PROPERTIES : 0)
  )
  out.string(message.topic)
  if (publisherId !== undefined) out.string(publisherId)
  if (shared.length > 0) {
    out.varint(shared.length)
    for (const key of shared) out.string(key)
  }
  if (expiresAt !== undefined) {
    out.buffer.writeDoubleLE(expiresAt, out.offset)
    out.offset += 8
  }
  if (subscriptionIds !== undefined) {
    out.varint(subscriptionIds.length)
    for (const id of subscriptionIds) out.varint(id)
  }
  if (properties !== undefined) {
    const { payloadFormatIndicator, contentType, responseTopic, correlationData, userProperties } = properties
    out.byte(
      (payloadFormatIndicator !== undefined ? PFI_GIVEN : 0) |
        (payloadFormatIndicator === true ? PFI_VALUE : 0) |
        (contentType !== undefined ? CONTENT_TYPE : 0) |
        (responseTopic !== undefined ? RESPONSE_TOPIC : 0) |
        (correlationData !== undefined ? CORRELATION_DATA : 0) |
        (userProperties !== undefined ? USER_PROPERTIES : 0)
    )
    if (contentType !== undefined) out.string(contentType)
    if (responseTopic !== undefined) out.string(responseTopic)
    if (correlationData !== undefined) {
      out.varint(correlationData.length)
      out.bytes(correlationData)
    }
    if (userProperties !== undefined) {
      out.varint(userProperties.length)
      for (const [name, value] of userProperties) {
        out.string(name)
        out.string(value)
      }
    }
  }
  out.bytes(message.payload)
}

/**
 * Forwarded messages, in order, as one binary batch. A message this form cannot carry (a
 * subscription identifier that is not a non-negative integer: none the broker makes) is
 * `undefined`, and the caller sends the JSON form instead.
 */
export const encode = (batch: ReadonlyArray<Forwarded>): Buffer | undefined => {
  const sizes = new Array<number>(batch.length)
  let total = 1 + varintSize(batch.length)
  for (let i = 0; i < batch.length; i++) {
    const forwarded = batch[i]!
    const ids = forwarded.message.subscriptionIds
    if (ids !== undefined && !ids.every(isVarint)) return undefined
    const size = bodySize(forwarded)
    sizes[i] = size
    total += varintSize(size) + size
  }
  const out = new Writer(Buffer.allocUnsafe(total))
  out.byte(MAGIC)
  out.varint(batch.length)
  for (let i = 0; i < batch.length; i++) writeEntry(out, batch[i]!, sizes[i]!)
  return out.buffer
}

/** Whether `bytes` is a batch in this form (by its first byte), not the JSON one. */
export const isBinary = (bytes: Uint8Array): boolean => bytes.length > 0 && bytes[0] === MAGIC

/** Thrown inside `decode` only, for bytes that end early or hold no known value; never escapes. */
class Unreadable {}
const UNREADABLE = new Unreadable()

/** Reads one entry's body (or the batch header) between `offset` and `end`. */
class Reader {
  readonly buffer: Buffer
  offset: number
  readonly end: number
  constructor(buffer: Buffer, offset: number, end: number) {
    this.buffer = buffer
    this.offset = offset
    this.end = end
  }

  byte(): number {
    if (this.offset >= this.end) throw UNREADABLE
    return this.buffer[this.offset++]!
  }

  varint(): number {
    let n = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      const byte = this.byte()
      n += (byte & 0x7f) * scale
      if (byte < 0x80) return n
      scale *= 0x80
    }
    // longer than any length that fits in memory
    throw UNREADABLE
  }

  /** `length` bytes from here: their start. */
  take(length: number): number {
    const start = this.offset
    if (length > this.end - start) throw UNREADABLE
    this.offset = start + length
    return start
  }

  string(): string {
    const length = this.varint()
    const start = this.take(length)
    return this.buffer.toString("utf8", start, start + length)
  }

  /** A copy of `length` bytes: a message never pins the whole batch it came in. */
  copy(length: number): Buffer {
    const start = this.take(length)
    const copy = Buffer.allocUnsafe(length)
    this.buffer.copy(copy, 0, start, start + length)
    return copy
  }
}

const readProperties = (input: Reader): PublishProperties => {
  const flags = input.byte()
  if ((flags & ~KNOWN_PFLAGS) !== 0 || ((flags & PFI_VALUE) !== 0 && (flags & PFI_GIVEN) === 0)) throw UNREADABLE
  const properties: {
    payloadFormatIndicator?: boolean
    contentType?: string
    responseTopic?: string
    correlationData?: Uint8Array
    userProperties?: ReadonlyArray<UserProperty>
  } = {}
  if ((flags & PFI_GIVEN) !== 0) properties.payloadFormatIndicator = (flags & PFI_VALUE) !== 0
  if ((flags & CONTENT_TYPE) !== 0) properties.contentType = input.string()
  if ((flags & RESPONSE_TOPIC) !== 0) properties.responseTopic = input.string()
  if ((flags & CORRELATION_DATA) !== 0) properties.correlationData = input.copy(input.varint())
  if ((flags & USER_PROPERTIES) !== 0) {
    const count = input.varint()
    // each pair takes two bytes at least: a count beyond that is no batch of ours
    if (count > (input.end - input.offset) / 2) throw UNREADABLE
    const pairs: Array<UserProperty> = []
    for (let i = 0; i < count; i++) pairs.push([input.string(), input.string()])
    properties.userProperties = pairs
  }
  return properties
}

const readBody = (input: Reader): Forwarded => {
  const flags = input.byte()
  const qos = flags & QOS_MASK
  if (qos === 3) throw UNREADABLE
  const topic = input.string()
  const publisherId = (flags & PUBLISHER) !== 0 ? input.string() : undefined
  let shared: ReadonlyArray<string> = NONE
  if ((flags & SHARED) !== 0) {
    const count = input.varint()
    if (count > input.end - input.offset) throw UNREADABLE
    const keys: Array<string> = []
    for (let i = 0; i < count; i++) keys.push(input.string())
    shared = keys
  }
  const message: {
    topic: string
    payload: Uint8Array
    qos: QoS
    retain: boolean
    properties?: PublishProperties
    expiresAt?: number
    subscriptionIds?: ReadonlyArray<number>
  } = { topic, payload: EMPTY, qos: qos as QoS, retain: (flags & RETAIN) !== 0 }
  if ((flags & EXPIRES) !== 0) {
    const at = input.take(8)
    message.expiresAt = input.buffer.readDoubleLE(at)
  }
  if ((flags & SUBSCRIPTION_IDS) !== 0) {
    const count = input.varint()
    if (count > input.end - input.offset) throw UNREADABLE
    const ids: Array<number> = []
    for (let i = 0; i < count; i++) ids.push(input.varint())
    message.subscriptionIds = ids
  }
  if ((flags & PROPERTIES) !== 0) message.properties = readProperties(input)
  message.payload = input.copy(input.end - input.offset)
  return { message: message as Message, publisherId, shared }
}

const NONE: ReadonlyArray<string> = []
const EMPTY = new Uint8Array(0)

/**
 * Forwarded messages from a binary batch, in order; `undefined` when the bytes are not one (no
 * header). An entry of no known shape is left out (and counted in `skipped`, as are the entries
 * after one whose length runs past the end), the others still delivered.
 */
export const decode = (bytes: Uint8Array): { readonly forwarded: Array<Forwarded>; readonly skipped: number } | undefined => {
  if (!isBinary(bytes)) return undefined
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const input = new Reader(buffer, 1, buffer.length)
  let count: number
  try {
    count = input.varint()
  } catch {
    return undefined
  }
  // each turn reads one byte at least: a count too large for the bytes ends with them
  const forwarded: Array<Forwarded> = []
  for (let i = 0; i < count; i++) {
    let start: number
    let length: number
    try {
      length = input.varint()
      start = input.take(length)
    } catch {
      // no length to find the next entry by: the rest of the batch is unreadable
      break
    }
    try {
      forwarded.push(readBody(new Reader(buffer, start, start + length)))
    } catch {
      // this entry only: the next one starts after its length
    }
  }
  return { forwarded, skipped: count - forwarded.length }
}

