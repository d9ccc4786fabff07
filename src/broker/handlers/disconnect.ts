/**
 * DISCONNECT from the client: the will is discarded (unless MQTT 5 reason 0x04 asks for it) and
 * MQTT 5 may change the session expiry, though not from 0 to more (a protocol error).
 */
import { Effect } from "effect"
import type { DisconnectPacket } from "../../protocol/Packet.ts"
import { type CloseReason, clientDisconnect } from "../CloseReason.ts"
import type { ConnectionContext } from "../ConnectionContext.ts"
import { ProtocolViolation } from "../ProtocolViolation.ts"

/** Handles DISCONNECT: the reason the connection ends with. */
export const handleDisconnect = (context: ConnectionContext, packet: DisconnectPacket): Effect.Effect<CloseReason, ProtocolViolation> =>
  Effect.suspend(() => {
    const expiry = packet.properties?.sessionExpiryInterval
    if (expiry !== undefined && expiry > 0 && context.session.connectExpiry === 0) {
      return Effect.fail(new ProtocolViolation({ reason: "DISCONNECT raised a session expiry of 0" }))
    }
    return Effect.succeed(clientDisconnect(packet.reasonCode, expiry))
  })
