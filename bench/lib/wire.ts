/**
 * MQTT 3.1.1 wire helpers for the load generator.
 *
 * Encoding: control packets (CONNECT, SUBSCRIBE, ...) are generated once with
 * mqtt-packet; PUBLISH packets are generated once as a *template* and then
 * copied and patched in place (sequence number, timestamp, packet id), so the
 * hot path never runs a general-purpose encoder.
 *
 * Decoding: a minimal streaming reader that only understands what a client
 * receives (CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP) and hands out offsets
 * into the receive buffer instead of allocating packet objects.
 */
import mqttPacket from "mqtt-packet"

// ---------------------------------------------------------------------------
// Payload layout written by every publisher (big endian):
//   0..1   publisher index (u16)
//   2..3   reserved (0)
//   4..7   sequence number (u32), starts at 0 per publisher
//   8..15  send timestamp, process.hrtime.bigint() (u64), or 0 when unused
//   16..   zero padding up to the configured payload size
// ---------------------------------------------------------------------------
export const PAYLOAD_HEADER = 16
export const OFF_PUB = 0
export const OFF_SEQ = 4
export const OFF_TS = 8

export interface ConnectOptions {
  readonly clientId: string
  readonly clean: boolean
  readonly keepalive: number
  /** user name and password, for brokers started with authentication on */
  readonly username?: string
  readonly password?: string
}

export const encodeConnect = (o: ConnectOptions): Buffer =>
  mqttPacket.generate({
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: 4,
    clientId: o.clientId,
    clean: o.clean,
    keepalive: o.keepalive,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: Buffer.from(o.password) } : {})
  })

export const encodeSubscribe = (messageId: number, topics: ReadonlyArray<{ topic: string; qos: 0 | 1 }>): Buffer =>
  mqttPacket.generate({
    cmd: "subscribe",
    messageId,
    subscriptions: topics.map((t) => ({ topic: t.topic, qos: t.qos }))
  })

export const DISCONNECT: Buffer = mqttPacket.generate({ cmd: "disconnect" })
export const PINGREQ: Buffer = mqttPacket.generate({ cmd: "pingreq" })

/** A pre-encoded PUBLISH packet plus the offsets of the fields we patch. */
export interface PublishTemplate {
  readonly bytes: Buffer
  readonly length: number
  readonly qos: 0 | 1
  /** offset of the packet identifier (only meaningful for QoS 1) */
  readonly idOffset: number
  /** offset of the first payload byte */
  readonly payloadOffset: number
}

export const publishTemplate = (topic: string, qos: 0 | 1, payloadSize: number, pubIndex: number): PublishTemplate => {
  const size = Math.max(payloadSize, PAYLOAD_HEADER)
  const payload = Buffer.alloc(size)
  payload.writeUInt16BE(pubIndex & 0xffff, OFF_PUB)
  const bytes = qos === 0
    ? mqttPacket.generate({ cmd: "publish", topic, payload, qos: 0, dup: false, retain: false })
    : mqttPacket.generate({ cmd: "publish", topic, payload, qos: 1, messageId: 1, dup: false, retain: false })
  const payloadOffset = bytes.length - size
  return { bytes, length: bytes.length, qos, idOffset: payloadOffset - 2, payloadOffset }
}

/**
 * Copies `count` publishes into one fresh buffer (one socket write), patching
 * sequence numbers `firstSeq..firstSeq+count-1`. For QoS 1 the packet id of
 * message k is `ids[k]`. When `withTimestamp` is set every message carries the
 * current hrtime (taken once per batch).
 */
export const buildBatch = (
  t: PublishTemplate,
  count: number,
  firstSeq: number,
  ids: ReadonlyArray<number> | undefined,
  withTimestamp: boolean
): Buffer => {
  const out = Buffer.allocUnsafe(t.length * count)
  const ts = withTimestamp ? process.hrtime.bigint() : 0n
  for (let k = 0, off = 0; k < count; k++, off += t.length) {
    t.bytes.copy(out, off)
    out.writeUInt32BE((firstSeq + k) >>> 0, off + t.payloadOffset + OFF_SEQ)
    if (withTimestamp) out.writeBigUInt64BE(ts, off + t.payloadOffset + OFF_TS)
    if (ids !== undefined) out.writeUInt16BE(ids[k]!, off + t.idOffset)
  }
  return out
}

/**
 * A QoS 1 PUBLISH with a `payloadBytes` payload, encoded by hand (mqtt-packet
 * would build the 16 MB payload twice); the packet id sits at `idOffset`.
 */
export const bigPublish = (topic: string, payloadBytes: number): { readonly bytes: Buffer; readonly idOffset: number } => {
  const topicBytes = Buffer.from(topic, "utf8")
  const remaining = 2 + topicBytes.length + 2 + payloadBytes
  const lenBytes: Array<number> = []
  let x = remaining
  do {
    let b = x % 128
    x = Math.floor(x / 128)
    if (x > 0) b |= 0x80
    lenBytes.push(b)
  } while (x > 0)
  const headerLen = 1 + lenBytes.length
  // zero-filled: the broker must copy every byte whatever they are
  const bytes = Buffer.alloc(headerLen + remaining)
  bytes[0] = 0x32 // PUBLISH, QoS 1
  Buffer.from(lenBytes).copy(bytes, 1)
  bytes.writeUInt16BE(topicBytes.length, headerLen)
  topicBytes.copy(bytes, headerLen + 2)
  return { bytes, idOffset: headerLen + 2 + topicBytes.length }
}

/** PUBACK for each id, in one buffer. */
export const encodePubacks = (ids: ReadonlyArray<number>, n: number): Buffer => {
  const out = Buffer.allocUnsafe(4 * n)
  for (let k = 0; k < n; k++) {
    out[4 * k] = 0x40
    out[4 * k + 1] = 0x02
    out.writeUInt16BE(ids[k]!, 4 * k + 2)
  }
  return out
}

// ---------------------------------------------------------------------------
// Streaming reader
// ---------------------------------------------------------------------------

export interface PacketHandler {
  onConnack(sessionPresent: boolean, returnCode: number): void
  /**
   * `buf[payloadStart..payloadEnd)` is the payload, `buf[topicStart..payloadStart)`
   * holds the topic (and packet id for QoS>0); valid only during the call.
   */
  onPublish(buf: Buffer, topicStart: number, topicLen: number, payloadStart: number, payloadEnd: number, qos: number, packetId: number, dup: boolean): void
  onPuback(packetId: number): void
  onSuback(packetId: number, granted: ReadonlyArray<number>): void
  onOther(type: number): void
  /** called once after every chunk was fully parsed (for batched replies) */
  onChunkEnd(): void
}

export class PacketReader {
  private pending: Buffer | undefined = undefined
  private readonly handler: PacketHandler
  constructor(handler: PacketHandler) {
    this.handler = handler
  }

  /** Throws on a malformed stream (the caller closes the connection). */
  push(chunk: Buffer): void {
    let buf = chunk
    if (this.pending !== undefined) {
      buf = Buffer.concat([this.pending, chunk])
      this.pending = undefined
    }
    const end = buf.length
    let off = 0
    const h = this.handler
    while (off < end) {
      if (end - off < 2) break
      const b0 = buf[off]!
      // remaining length: 1..4 bytes, 7 bits each
      let len = 0
      let mul = 1
      let p = off + 1
      let complete = false
      for (let i = 0; i < 4; i++) {
        if (p >= end) break
        const b = buf[p++]!
        len += (b & 0x7f) * mul
        if ((b & 0x80) === 0) {
          complete = true
          break
        }
        mul *= 128
        if (i === 3) throw new Error("malformed remaining length")
      }
      if (!complete) break
      const bodyStart = p
      const bodyEnd = bodyStart + len
      if (bodyEnd > end) break
      const type = b0 >> 4
      switch (type) {
        case 3: {
          const qos = (b0 >> 1) & 3
          const topicLen = buf.readUInt16BE(bodyStart)
          const topicStart = bodyStart + 2
          let q = topicStart + topicLen
          let id = 0
          if (qos > 0) {
            id = buf.readUInt16BE(q)
            q += 2
          }
          h.onPublish(buf, topicStart, topicLen, q, bodyEnd, qos, id, (b0 & 0x08) !== 0)
          break
        }
        case 4:
          h.onPuback(buf.readUInt16BE(bodyStart))
          break
        case 2:
          h.onConnack((buf[bodyStart]! & 1) === 1, buf[bodyStart + 1]!)
          break
        case 9: {
          const granted: Array<number> = []
          for (let i = bodyStart + 2; i < bodyEnd; i++) granted.push(buf[i]!)
          h.onSuback(buf.readUInt16BE(bodyStart), granted)
          break
        }
        default:
          h.onOther(type)
      }
      off = bodyEnd
    }
    if (off < end) this.pending = buf.subarray(off)
    h.onChunkEnd()
  }
}
