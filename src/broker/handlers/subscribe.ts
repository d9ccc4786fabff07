/**
 * SUBSCRIBE: each valid filter is granted (QoS as asked), an invalid one gets 0x80 alone;
 * the session and the router learn the grants, SUBACK goes out, then the retained messages
 * matching each granted filter follow with RETAIN=1.
 */
import { Effect } from "effect"
import * as Codec from "../../protocol/Codec.ts"
import { SubackFailure, type SubscribePacket } from "../../protocol/Packet.ts"
import { isValidTopicFilter } from "../../protocol/Topic.ts"
import { minQos, type QoS, withQos, withRetain } from "../../session/Message.ts"
import type { Subscription } from "../../session/SessionState.ts"
import { type ConnectionContext, whileOwner } from "../ConnectionContext.ts"

/** Handles SUBSCRIBE. */
export const handleSubscribe = (context: ConnectionContext, packet: SubscribePacket) =>
  whileOwner(context, (live) =>
    Effect.gen(function*() {
      const { core, clientId } = context
      const granted: Array<readonly [string, Subscription]> = []
      const codes: Array<number> = []
      for (const { qos, topic } of packet.subscriptions) {
        if (isValidTopicFilter(topic)) {
          granted.push([topic, { qos }])
          codes.push(qos)
        } else {
          codes.push(SubackFailure)
        }
      }
      yield* core.sessions.subscribe(clientId, granted)
      for (const [filter, { qos }] of granted) core.router.subscriptions.add(clientId, filter, qos)
      context.outbox.send(
        Codec.encode({ cmd: "suback", messageId: packet.messageId ?? 0, granted: codes }, context.protocolVersion)
      )
      for (const [filter, { qos }] of granted) {
        for (const retained of core.router.retainedFor(filter)) {
          const message = withRetain(withQos(retained, minQos(retained.qos, qos as QoS)), true)
          const outgoing = yield* core.sessions.deliver(clientId, message, true)
          if (outgoing.length > 0) live.send(outgoing)
        }
      }
    })
  )
