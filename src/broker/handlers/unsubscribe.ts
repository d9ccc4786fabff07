/** UNSUBSCRIBE: the session and the router forget the filters; UNSUBACK confirms (MQTT 5: per filter). */
import { Effect } from "effect"
import * as Codec from "../../protocol/Codec.ts"
import type { UnsubscribePacket } from "../../protocol/Packet.ts"
import { ReasonCode } from "../../protocol/ReasonCode.ts"
import { type ConnectionContext, whileOwner } from "../ConnectionContext.ts"

/** Handles UNSUBSCRIBE. */
export const handleUnsubscribe = (context: ConnectionContext, packet: UnsubscribePacket) =>
  whileOwner(context, () =>
    Effect.map(context.core.sessions.unsubscribe(context.session.clientId, packet.unsubscriptions), (existed) => {
      for (const filter of packet.unsubscriptions) context.core.router.subscriptions.remove(context.session.clientId, filter)
      const messageId = packet.messageId ?? 0
      context.outbox.send(
        context.protocol.version === 5
          ? Codec.encode({
            cmd: "unsuback",
            messageId,
            granted: existed.map((had) => (had ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted))
          }, 5)
          : Codec.encodeAck("unsuback", messageId)
      )
    }))
