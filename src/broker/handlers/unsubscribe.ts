/** UNSUBSCRIBE: the session and the router forget the filters; UNSUBACK confirms. */
import { Effect } from "effect"
import * as Codec from "../../protocol/Codec.ts"
import type { UnsubscribePacket } from "../../protocol/Packet.ts"
import { type ConnectionContext, whileOwner } from "../ConnectionContext.ts"

/** Handles UNSUBSCRIBE. */
export const handleUnsubscribe = (context: ConnectionContext, packet: UnsubscribePacket) =>
  whileOwner(context, () =>
    Effect.map(context.core.sessions.unsubscribe(context.clientId, packet.unsubscriptions), () => {
      for (const filter of packet.unsubscriptions) context.core.router.subscriptions.remove(context.clientId, filter)
      context.outbox.send(Codec.encodeAck("unsuback", packet.messageId ?? 0))
    }))
