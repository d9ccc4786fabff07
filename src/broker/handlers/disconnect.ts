/**
 * DISCONNECT from the client: the will is discarded (unless MQTT 5 reason 0x04 asks for it) and
 * MQTT 5 may change the session expiry, though not from 0 to more (a protocol error).
 */
import { Effect } from "effect"
import type { DisconnectPacket } from "../../protocol/Packet.ts"
import { type ConnectionContext, ProtocolViolation, ReasonCode } from "../ConnectionContext.ts"

/** Handles DISCONNECT. */
export const handleDisconnect = (context: ConnectionContext, packet: DisconnectPacket) =>
  Effect.suspend(() => {
    const expiry = packet.properties?.sessionExpiryInterval
    if (expiry !== undefined && expiry > 0 && context.connectExpiry === 0) {
      return Effect.fail(new ProtocolViolation({ reason: "DISCONNECT raised a session expiry of 0" }))
    }
    context.disconnectExpiry = expiry
    context.graceful = packet.reasonCode !== ReasonCode.DisconnectWithWill
    context.phase = "closing"
    return Effect.void
  })
