/**
 * Inbound PUBLISH and PUBREL. QoS 1 is acknowledged after it has been routed; QoS 2 is
 * forwarded on its first PUBLISH only (the session remembers the packet id until PUBREL),
 * so a re-sent PUBLISH before PUBREL is not delivered twice.
 */
import { Effect } from "effect"
import * as Codec from "../../protocol/Codec.ts"
import type { PublishPacket, PubrelPacket } from "../../protocol/Packet.ts"
import { isValidTopicName } from "../../protocol/Topic.ts"
import { Router } from "../../routing/Router.ts"
import type { Message } from "../../session/Message.ts"
import { type ConnectionContext, ProtocolViolation, whileOwner } from "../ConnectionContext.ts"
import * as Delivery from "../Delivery.ts"

const toMessage = (packet: PublishPacket): Message => ({
  topic: packet.topic,
  payload: typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload,
  qos: packet.qos,
  retain: packet.retain
})

/** Handles a PUBLISH from the client. */
export const handlePublish = Effect.fnUntraced(function*(context: ConnectionContext, packet: PublishPacket) {
  if (!isValidTopicName(packet.topic)) {
    return yield* new ProtocolViolation({ reason: `invalid topic name ${JSON.stringify(packet.topic)}` })
  }
  const packetId = packet.messageId ?? 0
  // `$SYS` belongs to the broker: acknowledged (so the client does not retry) but not routed, as Mosquitto does
  const routable = Router.acceptsPublish(packet.topic)
  switch (packet.qos) {
    case 0: {
      if (routable) yield* Delivery.publish(context.core, toMessage(packet))
      return
    }
    case 1: {
      if (routable) yield* Delivery.publish(context.core, toMessage(packet))
      context.outbox.send(Codec.encodeAck("puback", packetId))
      return
    }
    case 2: {
      const forward = yield* whileOwner(context, () => context.core.sessions.receiveQos2(context.clientId, packetId))
      if (forward === true && routable) yield* Delivery.publish(context.core, toMessage(packet))
      context.outbox.send(Codec.encodeAck("pubrec", packetId))
      return
    }
  }
})

/** Handles PUBREL: the inbound QoS 2 packet id is released and PUBCOMP sent (also for unknown ids). */
export const handlePubrel = Effect.fnUntraced(function*(context: ConnectionContext, packet: PubrelPacket) {
  const packetId = packet.messageId ?? 0
  yield* whileOwner(context, () => context.core.sessions.pubrel(context.clientId, packetId))
  context.outbox.send(Codec.encodeAck("pubcomp", packetId))
})
