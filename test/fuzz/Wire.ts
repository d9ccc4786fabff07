/**
 * MQTT bytes by hand. The fuzz suite must send packets no well-behaved encoder would produce
 * (reserved bits set, ill-formed UTF-8, duplicate properties…), so every client→broker packet is
 * built here from Buffer writes; and it must read the broker's answers without trusting a
 * library that might paper over a malformed reply, so server→client frames are decoded here too.
 */

/** MQTT protocol levels the suite speaks: 3 (3.1 "MQIsdp"), 4 (3.1.1), 5 (5.0). */
export type Version = 3 | 4 | 5

/** Bytes, from a string (UTF-8) or as given. */
export type Bytes = Buffer | string

const bytesOf = (value: Bytes): Buffer => (typeof value === "string" ? Buffer.from(value, "utf8") : value)

/** A Variable Byte Integer (1–4 bytes). */
export const varint = (value: number): Buffer => {
  const out: Array<number> = []
  do {
    let byte = value % 128
    value = Math.floor(value / 128)
    if (value > 0) byte |= 0x80
    out.push(byte)
  } while (value > 0)
  return Buffer.from(out)
}

/** A Two Byte Integer. */
export const u16 = (value: number): Buffer => Buffer.from([(value >> 8) & 0xff, value & 0xff])

/** A Four Byte Integer. */
export const u32 = (value: number): Buffer => {
  const out = Buffer.alloc(4)
  out.writeUInt32BE(value >>> 0)
  return out
}

/** A length-prefixed string or binary field; the bytes are sent as given, valid UTF-8 or not. */
export const str = (value: Bytes): Buffer => {
  const body = bytesOf(value)
  return Buffer.concat([u16(body.length), body])
}

/** A whole packet: first byte, Remaining Length (of the body as given, unless `announce` says otherwise), body. */
export const packet = (firstByte: number, body: ReadonlyArray<Buffer> | Buffer, announce?: number): Buffer => {
  const content = Buffer.isBuffer(body) ? body : Buffer.concat(body)
  return Buffer.concat([Buffer.from([firstByte]), varint(announce ?? content.length), content])
}

/** One MQTT 5 property, encoded by the type its identifier has in the spec (§2.2.2.2). */
export const prop = {
  byte: (id: number, value: number): Buffer => Buffer.from([id, value]),
  u16: (id: number, value: number): Buffer => Buffer.concat([Buffer.from([id]), u16(value)]),
  u32: (id: number, value: number): Buffer => Buffer.concat([Buffer.from([id]), u32(value)]),
  varint: (id: number, value: number): Buffer => Buffer.concat([Buffer.from([id]), varint(value)]),
  str: (id: number, value: Bytes): Buffer => Buffer.concat([Buffer.from([id]), str(value)]),
  pair: (id: number, key: Bytes, value: Bytes): Buffer => Buffer.concat([Buffer.from([id]), str(key), str(value)])
} as const

/** MQTT 5 property identifiers used by the suite. */
export const PropId = {
  PayloadFormatIndicator: 0x01,
  MessageExpiryInterval: 0x02,
  ContentType: 0x03,
  SubscriptionIdentifier: 0x0b,
  SessionExpiryInterval: 0x11,
  AssignedClientIdentifier: 0x12,
  ServerKeepAlive: 0x13,
  RequestProblemInformation: 0x17,
  WillDelayInterval: 0x18,
  RequestResponseInformation: 0x19,
  ReasonString: 0x1f,
  ReceiveMaximum: 0x21,
  TopicAliasMaximum: 0x22,
  TopicAlias: 0x23,
  MaximumQoS: 0x24,
  UserProperty: 0x26,
  MaximumPacketSize: 0x27
} as const

/** A property block: its length, then the properties. */
export const props = (entries: ReadonlyArray<Buffer> = []): Buffer => {
  const content = Buffer.concat(entries)
  return Buffer.concat([varint(content.length), content])
}

/** What a CONNECT is made of; every field can be set to something invalid. */
export interface ConnectFields {
  readonly version: Version
  readonly clientId: Bytes
  /** Default: "MQTT" (4, 5) or "MQIsdp" (3). */
  readonly protocolName?: Bytes
  /** Default: `version`. */
  readonly level?: number
  /** Default: true. */
  readonly clean?: boolean
  readonly keepalive?: number
  /** Connect flag bits OR-ed in after the computed ones (reserved bit 0, stray will bits…). */
  readonly extraFlags?: number
  /** v5 CONNECT properties (the entries; the length is computed). */
  readonly properties?: ReadonlyArray<Buffer>
  readonly will?: { readonly topic: Bytes; readonly payload: Buffer; readonly qos: number; readonly retain: boolean; readonly properties?: ReadonlyArray<Buffer> }
  readonly username?: Bytes
  readonly password?: Bytes
  /** Default 0x10; anything else sets reserved fixed-header bits. */
  readonly firstByte?: number
}

/** A CONNECT packet from its fields. */
export const connect = (fields: ConnectFields): Buffer => {
  const v5 = fields.version === 5
  const will = fields.will
  let flags = 0
  if (fields.username !== undefined) flags |= 0x80
  if (fields.password !== undefined) flags |= 0x40
  if (will !== undefined) flags |= 0x04 | (will.qos << 3) | (will.retain ? 0x20 : 0)
  if (fields.clean !== false) flags |= 0x02
  flags |= fields.extraFlags ?? 0
  const body: Array<Buffer> = [
    str(fields.protocolName ?? (fields.version === 3 ? "MQIsdp" : "MQTT")),
    Buffer.from([fields.level ?? fields.version, flags & 0xff]),
    u16(fields.keepalive ?? 0)
  ]
  if (v5) body.push(props(fields.properties))
  body.push(str(fields.clientId))
  if (will !== undefined) {
    if (v5) body.push(props(will.properties))
    body.push(str(will.topic), str(will.payload))
  }
  if (fields.username !== undefined) body.push(str(fields.username))
  if (fields.password !== undefined) body.push(str(fields.password))
  return packet(fields.firstByte ?? 0x10, body)
}

/** What a PUBLISH is made of. */
export interface PublishFields {
  readonly version: Version
  readonly topic: Bytes
  readonly qos: number
  readonly packetId?: number
  readonly dup?: boolean
  readonly retain?: boolean
  readonly properties?: ReadonlyArray<Buffer>
  readonly payload?: Buffer
}

/** A PUBLISH packet; the QoS bits are written as given (3 included). */
export const publish = (fields: PublishFields): Buffer => {
  const first = 0x30 | (fields.dup === true ? 0x08 : 0) | ((fields.qos & 3) << 1) | (fields.retain === true ? 1 : 0)
  const body: Array<Buffer> = [str(fields.topic)]
  // a packet id only at QoS > 0 (3 included): at QoS 0 its bytes would be read as the next field
  if (fields.qos > 0) body.push(u16(fields.packetId ?? 1))
  if (fields.version === 5) body.push(props(fields.properties))
  body.push(fields.payload ?? Buffer.alloc(0))
  return packet(first, body)
}

/** A SUBSCRIBE packet: each filter with its options byte (QoS in bits 0–1). */
export const subscribe = (
  version: Version,
  packetId: number,
  filters: ReadonlyArray<{ readonly filter: Bytes; readonly options: number }>,
  properties: ReadonlyArray<Buffer> = [],
  firstByte = 0x82
): Buffer =>
  packet(firstByte, [
    u16(packetId),
    version === 5 ? props(properties) : Buffer.alloc(0),
    ...filters.map(({ filter, options }) => Buffer.concat([str(filter), Buffer.from([options])]))
  ])

/** An UNSUBSCRIBE packet. */
export const unsubscribe = (
  version: Version,
  packetId: number,
  filters: ReadonlyArray<Bytes>,
  properties: ReadonlyArray<Buffer> = [],
  firstByte = 0xa2
): Buffer =>
  packet(firstByte, [u16(packetId), version === 5 ? props(properties) : Buffer.alloc(0), ...filters.map((f) => str(f))])

/** PINGREQ. */
export const PINGREQ: Buffer = Buffer.from([0xc0, 0x00])

/** A normal DISCONNECT (reason 0x00 in MQTT 5, in its shortest form). */
export const DISCONNECT: Buffer = Buffer.from([0xe0, 0x00])

// ---------------------------------------------------------------------------
// server → client
// ---------------------------------------------------------------------------

/** Packet type names, by type number. */
export const TYPE_NAMES = [
  "RESERVED0", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
  "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"
] as const

/** One packet the broker sent, with the fields the suite judges answers by. */
export interface ServerPacket {
  readonly type: number
  readonly name: string
  readonly bytes: Buffer
  /** CONNACK return/reason code; DISCONNECT, PUBACK, PUBREC, PUBCOMP reason code (0 when absent). */
  readonly code?: number
  /** CONNACK: 3 for the 2-byte MQTT 3.1/3.1.1 form, 5 for the MQTT 5 form (with properties). */
  readonly form?: 3 | 5
  /** SUBACK / MQTT 5 UNSUBACK reason codes, one per filter. */
  readonly codes?: ReadonlyArray<number>
  readonly packetId?: number
  readonly topic?: string
  readonly payload?: Buffer
}

const hex2 = (n: number): string => `0x${n.toString(16).padStart(2, "0")}`

/** A short label for a received packet: `CONNACK(0x01)`, `SUBACK[0x80,0x01]`, `PINGRESP`. */
export const describePacket = (p: ServerPacket): string =>
  p.codes !== undefined
    ? `${p.name}[${p.codes.map(hex2).join(",")}]`
    : p.type === 3
    ? `PUBLISH(${p.topic ?? "?"})`
    : p.code !== undefined
    ? `${p.name}(${hex2(p.code)}${p.form === 5 && p.type === 2 ? ", v5 form" : ""})`
    : p.name

/** Reads a Variable Byte Integer at `offset`: its value and size, undefined if incomplete, null if malformed. */
const readVarint = (bytes: Buffer, offset: number): { value: number; size: number } | undefined | null => {
  let value = 0
  let multiplier = 1
  for (let i = 0; i < 4; i++) {
    if (offset + i >= bytes.length) return undefined
    const byte = bytes[offset + i]!
    value += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) return { value, size: i + 1 }
    multiplier *= 128
  }
  return null
}

/** Decodes one whole server→client frame; throws on a frame the spec does not allow a server to send. */
const decodeServerPacket = (frame: Buffer, bodyStart: number, version: Version): ServerPacket => {
  const type = frame[0]! >> 4
  const name = TYPE_NAMES[type]!
  const body = frame.subarray(bodyStart)
  const base = { type, name, bytes: frame }
  const need = (n: number) => {
    if (body.length < n) throw new Error(`${name} body of ${body.length} bytes is too short`)
  }
  switch (type) {
    case 2:
      need(2)
      return { ...base, code: body[1]!, form: body.length === 2 ? 3 : 5 }
    case 4:
    case 5:
    case 7:
      need(2)
      return { ...base, packetId: body.readUInt16BE(0), code: body[2] ?? 0 }
    case 9:
    case 11: {
      need(2)
      let at = 2
      if (version === 5) {
        const length = readVarint(body, at)
        if (length == null) throw new Error(`${name} property length unreadable`)
        at += length.size + length.value
      }
      const codes = [...body.subarray(at)]
      return type === 11 && version !== 5 ? { ...base, packetId: body.readUInt16BE(0) } : { ...base, packetId: body.readUInt16BE(0), codes }
    }
    case 3: {
      need(2)
      const topicLength = body.readUInt16BE(0)
      let at = 2 + topicLength
      const topic = body.subarray(2, at).toString("utf8")
      const qos = (frame[0]! >> 1) & 3
      let packetId: number | undefined
      if (qos > 0) {
        packetId = body.readUInt16BE(at)
        at += 2
      }
      if (version === 5) {
        const length = readVarint(body, at)
        if (length == null) throw new Error("PUBLISH property length unreadable")
        at += length.size + length.value
      }
      return { ...base, topic, ...(packetId === undefined ? {} : { packetId }), payload: body.subarray(at) }
    }
    case 13:
      return base
    case 14:
      return { ...base, code: body[0] ?? 0 }
    default:
      throw new Error(`a server never sends ${name} (first byte ${hex2(frame[0]!)})`)
  }
}

/** Splits a server's byte stream into packets as it arrives. */
export class ServerFrames {
  private buffered: Buffer = Buffer.alloc(0)
  /** Set once the stream stops making sense (then nothing more is decoded). */
  error: string | undefined
  private readonly version: Version

  constructor(version: Version) {
    this.version = version
  }

  /** The packets `chunk` completes. */
  push(chunk: Buffer): Array<ServerPacket> {
    const out: Array<ServerPacket> = []
    if (this.error !== undefined) return out
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    while (this.buffered.length >= 2) {
      const length = readVarint(this.buffered, 1)
      if (length === null) {
        this.error = "malformed Remaining Length from the server"
        return out
      }
      if (length === undefined || this.buffered.length < 1 + length.size + length.value) break
      const total = 1 + length.size + length.value
      const frame = Buffer.from(this.buffered.subarray(0, total))
      this.buffered = this.buffered.subarray(total)
      try {
        out.push(decodeServerPacket(frame, 1 + length.size, this.version))
      } catch (error) {
        this.error = `${(error as Error).message}: ${frame.toString("hex")}`
        return out
      }
    }
    return out
  }

  /** Bytes of an incomplete packet left when the stream ended. */
  get pending(): number {
    return this.buffered.length
  }
}
