/**
 * Bytes → packets for one connection. Frames are split per connection (`Frame.ts`); the packets
 * every message moves through (PUBLISH, the four acks, PINGREQ) are decoded here, the rest by
 * mqtt-packet, whose parser is shared by all connections to save memory.
 *
 * Isolation: a shared parser only ever sees one whole frame per call, and it is thrown away
 * after any parse that was not exactly one clean packet (an error, a throw, bytes left over), so
 * nothing one connection sends can reach the decoding of another's bytes. What mqtt-packet
 * accepts leniently is then checked against the spec: well-formed UTF-8 without U+0000 in
 * every string [MQTT-1.5.3-1, -2], non-zero packet identifiers [MQTT-2.3.1-1], and MQTT 5
 * property lists (`Properties.ts`).
 */
import mqttPacket from "mqtt-packet"
import { type FrameAllowance, type FrameError, FrameSplitter, RESUME } from "./Frame.ts"
import type { Packet } from "./Packet.ts"
import { type PropertySet, scanProperties } from "./Properties.ts"
import { type DecodeErrorReason, malformed, protocolError, unsupportedProtocolVersion } from "./DecodeError.ts"
import { decodePublishPacket } from "./Publish.ts"

export type { DecodeErrorReason } from "./DecodeError.ts"

/** Result of feeding a chunk: the complete packets, and the error that stopped decoding, if any. */
export interface Decoded {
  readonly packets: ReadonlyArray<Packet>
  readonly error: DecodeErrorReason | undefined
}

/** A per-connection decoder. */
export interface Decoder {
  readonly decode: (chunk: Uint8Array) => Decoded
  /** Bytes the decoder waits for from the allowance before it reads on (0: not waiting). */
  readonly waitingFor: () => number
  /** Hands the decoder `bytes` granted from the allowance while it waited; `decode(RESUME)` then carries on. */
  readonly adopt: (bytes: number) => void
  /** Gives back what the decoder holds from the allowance (at the end of the connection). */
  readonly dispose: () => void
  /** Whether a large packet (over 64 KiB) is partly received. */
  readonly receivingLarge: () => boolean
}

export { RESUME } from "./Frame.ts"

const ACK_COMMANDS = [undefined, undefined, undefined, undefined, "puback", "pubrec", "pubrel", "pubcomp"] as const

/** Bytes of the fixed header (type byte and Remaining Length) of a whole frame. */
const headerLength = (frame: Uint8Array): number => {
  let i = 1
  while (frame[i]! & 0x80) i++
  return i + 1
}

/**
 * The packets every message moves through, decoded without mqtt-packet; undefined hands the
 * frame to mqtt-packet (everything else, and anything unusual).
 */
const decodeHot = (frame: Buffer, version: number): Packet | DecodeErrorReason | undefined => {
  const type = frame[0]! >> 4
  if (type === 3) {
    const decoded = decodePublishPacket(frame, version)
    return "cmd" in decoded ? decoded as Packet : decoded
  }
  if (type >= 4 && type <= 7) {
    // fixed header flags: 0010 for PUBREL, 0000 for the others; exactly 2 bytes in 3.1.1
    if ((frame[0]! & 0x0f) !== (type === 6 ? 2 : 0) || frame[1]! & 0x80) return undefined
    if (frame[1] !== 2 && (version !== 5 || frame[1]! < 2)) return undefined
    const messageId = (frame[2]! << 8) | frame[3]!
    if (messageId === 0) return protocolError(`${ACK_COMMANDS[type]!.toUpperCase()} with packet identifier 0`)
    // MQTT 5: reason code, then properties
    if (frame[1]! > 3) {
      const scan = scanProperties(frame, 5, "ack")
      if ("error" in scan) return protocolError(scan.error)
      if (scan.end !== frame.length) return malformed("bytes after the properties")
    }
    return { cmd: ACK_COMMANDS[type]!, messageId } as Packet
  }
  if (frame[0] === 0xc0 && frame[1] === 0) return { cmd: "pingreq" }
  return undefined
}

/** The protocol level a CONNECT frame claims, when its protocol name is "MQTT" (for the answer to a malformed one). */
const claimedConnectVersion = (frame: Uint8Array): number | undefined => {
  if (frame[0]! >> 4 !== 1) return undefined
  const h = headerLength(frame)
  if (frame.length < h + 7 || frame[h] !== 0 || frame[h + 1] !== 4) return undefined
  const name = String.fromCharCode(frame[h + 2]!, frame[h + 3]!, frame[h + 4]!, frame[h + 5]!)
  return name === "MQTT" ? frame[h + 6] : undefined
}

/** What a shared mqtt-packet parser made of one frame. */
interface SharedParser {
  readonly parser: ReturnType<typeof mqttPacket.parser>
  packets: Array<Packet>
  error: DecodeErrorReason | undefined
}

const settingsFor = (version: number): { protocolVersion?: number } => (version === 0 ? {} : { protocolVersion: version })

const makeSharedParser = (version: number): SharedParser => {
  const shared: SharedParser = {
    parser: mqttPacket.parser(settingsFor(version)),
    packets: [],
    error: undefined
  }
  shared.parser.on("packet", (packet) => {
    shared.packets.push(packet)
  })
  shared.parser.on("error", (cause: unknown) => {
    const message = cause instanceof Error ? cause.message : String(cause)
    shared.error ??= message === "Invalid protocol version" ? unsupportedProtocolVersion : malformed(message)
  })
  return shared
}

/** mqtt-packet parsers shared by every connection, one per protocol version (0: before CONNECT). */
const sharedParsers = new Map<number, SharedParser>()

/** Parses one whole frame with the shared parser for `version`. */
const parseCold = (frame: Buffer, version: number): Packet | DecodeErrorReason => {
  let shared = sharedParsers.get(version)
  if (shared === undefined) {
    shared = makeSharedParser(version)
    sharedParsers.set(version, shared)
  }
  let left = 0
  let thrown = false
  try {
    left = shared.parser.parse(frame)
  } catch {
    thrown = true
  }
  // parsing a CONNECT makes it the parser's settings (its protocol version decides how later
  // frames are read, and it would pin the client's packet): put the shared settings back
  ;(shared.parser as unknown as { settings: object }).settings = settingsFor(version)
  const { error, packets } = shared
  shared.packets = []
  shared.error = undefined
  const packet = packets.length === 1 ? packets[0] : undefined
  // anything but one clean packet may have left state behind: never let it reach another frame
  if (thrown || error !== undefined || packet === undefined || left !== 0) sharedParsers.delete(version)
  if (error !== undefined) return error
  if (thrown || packet === undefined || left !== 0) return malformed("packet does not parse")
  return packet
}

/** Whether `text`, decoded from `frame`, was well-formed UTF-8 without U+0000. */
const isCleanText = (text: string, frame: Buffer): boolean => {
  if (text.includes("\u0000")) return false
  // ill-formed bytes decode to U+FFFD; a real U+FFFD re-encodes to bytes that are in the frame
  return !text.includes("\uFFFD") || frame.includes(Buffer.from(text, "utf8"))
}

/** The first string anywhere in a decoded packet that was not clean UTF-8. */
const badText = (value: unknown, frame: Buffer, depth = 0): string | undefined => {
  if (typeof value === "string") return isCleanText(value, frame) ? undefined : value
  if (typeof value !== "object" || value === null || Buffer.isBuffer(value) || depth > 4) return undefined
  const items = Array.isArray(value) ? value : [...Object.keys(value), ...Object.values(value)]
  for (const item of items) {
    const bad = badText(item, frame, depth + 1)
    if (bad !== undefined) return bad
  }
  return undefined
}

/** The offset after a two-byte-length string or binary field at `at`, or undefined past `end`. */
const skipField = (frame: Buffer, at: number | undefined): number | undefined =>
  at === undefined || at + 2 > frame.length ? undefined : at + 2 + frame.readUInt16BE(at)

/** The end of the property list at `at` (MQTT 5), or why it breaks the rules. */
const skipProperties = (frame: Buffer, at: number | undefined, set: PropertySet): number | string | undefined => {
  if (at === undefined) return undefined
  const scan = scanProperties(frame, at, set)
  return "error" in scan ? scan.error : scan.end
}

/**
 * What mqtt-packet does not check in a CONNECT: the flag combinations [MQTT-3.1.2-11, -13, -14,
 * -15, -22], a protocol name that fits its level [MQTT-3.1.2-1], MQTT 5 property lists, and
 * bytes after the payload [MQTT-3.1.4-1].
 */
const checkConnect = (packet: Packet & { cmd: "connect" }, frame: Buffer): DecodeErrorReason | undefined => {
  const v5 = packet.protocolVersion === 5
  if ((packet.protocolId === "MQIsdp") !== (packet.protocolVersion === 3)) {
    return malformed(`protocol name ${packet.protocolId} with level ${packet.protocolVersion}`)
  }
  const flagsAt = skipField(frame, headerLength(frame))! + 1
  const flags = frame[flagsAt]!
  const will = (flags & 0x04) !== 0
  const willQos = (flags >> 3) & 0x03
  if (!will && (willQos !== 0 || (flags & 0x20) !== 0)) return malformed("will QoS or retain without a will")
  if (willQos === 3) return malformed("will QoS 3")
  if (!v5 && (flags & 0x40) !== 0 && (flags & 0x80) === 0) return malformed("password without a user name")
  let at: number | string | undefined = flagsAt + 3
  if (v5) at = skipProperties(frame, at, "connect")
  if (typeof at === "string") return protocolError(at)
  at = skipField(frame, at) // client id
  if (will) {
    if (v5) at = skipProperties(frame, at, "will")
    if (typeof at === "string") return protocolError(at)
    at = skipField(frame, skipField(frame, at)) // topic, payload
  }
  if (flags & 0x80) at = skipField(frame, at)
  if (flags & 0x40) at = skipField(frame, at)
  return at === frame.length ? undefined : malformed("bytes after the CONNECT payload")
}

/** Where the MQTT 5 property lists of a cold packet start. */
const propertyOffsets = (packet: Packet, frame: Buffer): Array<[number, PropertySet]> => {
  const h = headerLength(frame)
  switch (packet.cmd) {
    case "subscribe":
      return [[h + 2, "subscribe"]]
    case "unsubscribe":
      return [[h + 2, "unsubscribe"]]
    case "disconnect":
      return frame.length > h + 1 ? [[h + 1, "disconnect"]] : []
    case "auth":
      return frame.length > h + 1 ? [[h + 1, "auth"]] : []
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return frame.length > h + 3 ? [[h + 3, "ack"]] : []
    default:
      return []
  }
}

/** What mqtt-packet let through that the spec does not. */
const checkCold = (packet: Packet, frame: Buffer, version: number): DecodeErrorReason | undefined => {
  const bad = badText(packet, frame)
  if (bad !== undefined) return malformed(`ill-formed UTF-8 or U+0000 in ${JSON.stringify(bad)}`)
  if (packet.cmd === "connect") return checkConnect(packet, frame)
  if ("messageId" in packet && packet.messageId === 0 && packet.cmd !== "publish") {
    return protocolError(`${packet.cmd.toUpperCase()} with packet identifier 0`)
  }
  if (packet.cmd === "subscribe" && packet.subscriptions.length === 0) return protocolError("SUBSCRIBE without a topic filter") // [MQTT-3.8.3-3]
  if (packet.cmd === "unsubscribe" && packet.unsubscriptions.length === 0) return protocolError("UNSUBSCRIBE without a topic filter") // [MQTT-3.10.3-2]
  if (version !== 5) return undefined
  for (const [offset, set] of propertyOffsets(packet, frame)) {
    const scan = scanProperties(frame, offset, set)
    if ("error" in scan) return protocolError(scan.error)
  }
  return undefined
}

/** Decodes one whole frame. */
const decodeFrame = (frame: Buffer, version: number): Packet | DecodeErrorReason => {
  const hot = version === 0 ? undefined : decodeHot(frame, version)
  if (hot !== undefined) return hot
  if (version !== 0 && frame[0]! >> 4 === 1) return protocolError("second CONNECT on one connection")
  const packet = parseCold(frame, version)
  if (!("cmd" in packet)) {
    const connectVersion = version === 0 ? claimedConnectVersion(frame) : undefined
    return packet._tag === "Malformed" && connectVersion !== undefined ? { ...packet, connectVersion } : packet
  }
  const error = checkCold(packet, frame, version)
  if (error === undefined) return packet
  return version === 0 && packet.cmd === "connect" && error._tag !== "UnsupportedProtocolVersion" && "message" in error
    ? { ...error, connectVersion: packet.protocolVersion }
    : error
}

/**
 * A connection's decoder: one object with its methods on the prototype, since every connection,
 * idle or not, holds one (issue 16: memory per idle connection).
 */
class PacketDecoder implements Decoder {
  private readonly splitter: FrameSplitter
  private readonly frames: Array<Buffer> = []
  private packets: Array<Packet> = []
  private error: DecodeErrorReason | undefined = undefined
  // known once CONNECT is parsed; before it, every frame goes to the pre-CONNECT parser
  private version = 0

  constructor(maxPacketSize: number, allowance: FrameAllowance | undefined) {
    this.splitter = new FrameSplitter(maxPacketSize, allowance)
  }

  decode(chunk: Uint8Array): Decoded {
    if (this.error === undefined) {
      const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)
      const frames = this.frames
      const frameError = this.splitter.push(bytes, frames)
      for (const frame of frames) {
        if (this.error !== undefined) break
        const decoded = decodeFrame(frame, this.version)
        if ("cmd" in decoded) {
          if (decoded.cmd === "connect" && this.version === 0) this.version = decoded.protocolVersion ?? 4
          this.packets.push(decoded)
        } else this.error = decoded
      }
      frames.length = 0
      if (frameError !== undefined) this.error ??= frameError
    }
    const result: Decoded = { packets: this.packets, error: this.error }
    this.packets = []
    return result
  }

  waitingFor(): number {
    return this.error === undefined ? this.splitter.waitingFor : 0
  }

  adopt(bytes: number): void {
    this.splitter.adopt(bytes)
  }

  dispose(): void {
    this.splitter.dispose()
  }

  receivingLarge(): boolean {
    return this.splitter.receivingLarge
  }
}

/**
 * Creates a decoder that refuses packets larger than `maxPacketSize` bytes and takes partly
 * received packets' bytes from `allowance`.
 */
export const makeDecoder = (maxPacketSize: number, allowance?: FrameAllowance): Decoder =>
  new PacketDecoder(maxPacketSize, allowance)

/** Feeds nothing: after `adopt`, carries on with the bytes that waited. */
export const resume = (decoder: Decoder): Decoded => decoder.decode(RESUME)
