/**
 * Why bytes from a client did not decode, shaped like Effect's `SocketServerError`: the decoder
 * returns one of the `DecodeErrorReason` values (plain data, cheap to make, never thrown), and
 * the connection fails with `DecodeError`, which wraps the reason. Each reason maps to the MQTT 5
 * reason code the broker answers with (`reasonCodeOf`).
 */
import { Data } from "effect"
import type { FrameError } from "./Frame.ts"
import { ReasonCode } from "./ReasonCode.ts"

/** The bytes break the packet format; `connectVersion` is 5 when they were an MQTT 5 CONNECT (it may get CONNACK 0x81). */
export interface Malformed {
  readonly _tag: "Malformed"
  readonly message: string
  readonly connectVersion?: number | undefined
}

/** A well-formed packet the spec forbids (MQTT 5 reason code 0x82). */
export interface ProtocolError {
  readonly _tag: "ProtocolError"
  readonly message: string
  readonly connectVersion?: number | undefined
}

/** A CONNECT with a protocol level this broker does not speak: answered with CONNACK 1, not just closed. */
export interface UnsupportedProtocolVersion {
  readonly _tag: "UnsupportedProtocolVersion"
}

/** Every reason decoding can stop for (framing: `TooLarge`, `MalformedLength`; parsing: the rest). */
export type DecodeErrorReason = FrameError | Malformed | ProtocolError | UnsupportedProtocolVersion

/** A `Malformed` reason. */
export const malformed = (message: string): Malformed => ({ _tag: "Malformed", message })

/** A `ProtocolError` reason. */
export const protocolError = (message: string): ProtocolError => ({ _tag: "ProtocolError", message })

/** The one `UnsupportedProtocolVersion` reason (it carries nothing). */
export const unsupportedProtocolVersion: UnsupportedProtocolVersion = { _tag: "UnsupportedProtocolVersion" }

/** The MQTT 5 reason code that answers `reason` (DISCONNECT, or CONNACK for a first packet). */
export const reasonCodeOf = (reason: DecodeErrorReason): ReasonCode => {
  switch (reason._tag) {
    case "TooLarge":
      return ReasonCode.PacketTooLarge
    case "MalformedLength":
    case "Malformed":
      return ReasonCode.MalformedPacket
    case "ProtocolError":
      return ReasonCode.ProtocolError
    case "UnsupportedProtocolVersion":
      return ReasonCode.UnsupportedProtocolVersion
  }
}

/** A human-readable line for `reason` (log lines, MQTT 5 reason strings). */
export const describe = (reason: DecodeErrorReason): string => {
  switch (reason._tag) {
    case "TooLarge":
      return `packet of ${reason.size} bytes exceeds the maximum packet size ${reason.limit}`
    case "MalformedLength":
      return "malformed remaining length"
    case "UnsupportedProtocolVersion":
      return "unsupported protocol level"
    case "ProtocolError":
      return `protocol error: ${reason.message}`
    case "Malformed":
      return `malformed packet: ${reason.message}`
  }
}

/** Decoding a client's bytes failed; `reason` says how. */
export class DecodeError extends Data.TaggedError("DecodeError")<{ readonly reason: DecodeErrorReason }> {
  override get message(): string {
    return describe(this.reason)
  }
}
