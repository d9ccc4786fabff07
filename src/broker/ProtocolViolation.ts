/**
 * A client broke the protocol (or sent what the broker will not take): the connection is closed
 * and the reason logged; a live MQTT 5 client first gets DISCONNECT with `code`.
 */
import { Data } from "effect"
import { ReasonCode } from "../protocol/ReasonCode.ts"

/** A protocol violation: `code` is the MQTT 5 reason code (0x82 Protocol Error unless said otherwise). */
export class ProtocolViolation extends Data.TaggedError("ProtocolViolation")<{
  readonly reason: string
  readonly code?: ReasonCode | undefined
}> {
  /** The reason code the client is told, 0x82 Protocol Error when none was given. */
  get reasonCode(): ReasonCode {
    return this.code ?? ReasonCode.ProtocolError
  }
}
