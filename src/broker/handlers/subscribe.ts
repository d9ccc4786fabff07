/**
 * SUBSCRIBE: each valid filter is granted (QoS as asked, capped by the broker's maximum), an
 * invalid one is refused alone (0x80, MQTT 5 0x8F); the session and the router learn the grants,
 * SUBACK goes out, then retained messages matching each granted filter follow with RETAIN=1
 * (MQTT 5 Retain Handling: 0 always, 1 only for a new subscription, 2 never; never for a shared
 * subscription). A filter the `Authorizer` denies is refused alone (0x80, MQTT 5 0x87), and a
 * retained message the client may not receive is not sent. A new filter past
 * `maxSubscriptionsPerClient` is refused alone (0x80, MQTT 5 0x97).
 */
import { Clock, Effect, Option } from "effect"
import { NotAuthorized } from "../../auth/Authorizer.ts"
import * as Codec from "../../protocol/Codec.ts"
import { SubackFailure, type SubscribePacket } from "../../protocol/Packet.ts"
import { isValidTopicFilter, parseSharedFilter } from "../../protocol/Topic.ts"
import { isExpired, minQos, type QoS, withQos, withRetain } from "../../session/Message.ts"
import type { Subscription } from "../../session/SessionState.ts"
import { ReasonCode } from "../../protocol/ReasonCode.ts"
import { type ConnectionContext, whileOwner } from "../ConnectionContext.ts"
import { ProtocolViolation } from "../ProtocolViolation.ts"
import * as TopicLimits from "../TopicLimits.ts"

/** Handles SUBSCRIBE. */
export const handleSubscribe = (context: ConnectionContext, packet: SubscribePacket) =>
  whileOwner(context, (live) =>
    Effect.gen(function*() {
      const { core } = context
          const { clientId } = context.session
      const { authorizer } = core
      const v5 = context.protocol.version === 5
      const identifier = v5 ? packet.properties?.subscriptionIdentifier : undefined
      const granted: Array<readonly [string, Subscription]> = []
      const codes: Array<number> = []
      const before = yield* core.sessions.get(clientId)
      const limit = core.config.maxSubscriptionsPerClient
      let held = limit > 0 && Option.isSome(before) ? before.value.subscriptions.size : 0
      for (const { nl, qos, rap, rh, topic } of packet.subscriptions) {
        if (!isValidTopicFilter(topic)) {
          codes.push(v5 ? ReasonCode.TopicFilterInvalid : SubackFailure)
          continue
        }
        const overLimit = TopicLimits.exceeded(topic, core.config.maxTopicLength, core.config.maxTopicLevels)
        if (overLimit !== undefined) {
          yield* Effect.logInfo(`subscription refused: topic filter of ${overLimit}`).pipe(Effect.annotateLogs({ clientId }))
          codes.push(v5 ? ReasonCode.TopicFilterInvalid : SubackFailure)
          continue
        }
        const shared = parseSharedFilter(topic) !== undefined
        if (shared && nl === true) {
          return yield* new ProtocolViolation({ reason: "No Local on a shared subscription" })
        }
        if (
          authorizer !== undefined &&
          !(yield* authorizer.authorize({ username: context.session.username, clientId, action: "subscribe", topic }))
        ) {
          codes.push(v5 ? NotAuthorized : SubackFailure)
          continue
        }
        if (limit > 0) {
          // only a filter the session does not hold yet (nor earlier in this packet) takes a place
          const isNew = !(Option.isSome(before) && before.value.subscriptions.has(topic)) &&
            !granted.some(([filter]) => filter === topic)
          if (isNew && held >= limit) {
            yield* Effect.logInfo(`subscription to ${JSON.stringify(topic)} refused: over --max-subscriptions-per-client ${limit}`).pipe(
              Effect.annotateLogs({ clientId })
            )
            codes.push(v5 ? ReasonCode.QuotaExceeded : SubackFailure)
            continue
          }
          if (isNew) held++
        }
        const grant = minQos(qos, core.config.maximumQos)
        granted.push([topic, {
          qos: grant,
          ...(v5 && nl === true ? { noLocal: true } : {}),
          ...(v5 && rap === true ? { retainAsPublished: true } : {}),
          ...(v5 && rh !== undefined && rh !== 0 ? { retainHandling: rh as 1 | 2 } : {}),
          ...(identifier !== undefined ? { identifier } : {})
        }])
        codes.push(grant)
      }
      yield* core.sessions.subscribe(clientId, granted)
      for (const [filter, subscription] of granted) core.router.subscriptions.add(clientId, filter, subscription)
      context.outbox.send(
        Codec.encode({ cmd: "suback", messageId: packet.messageId ?? 0, granted: codes }, context.protocol.version)
      )
      const now = yield* Clock.currentTimeMillis
      for (const [filter, subscription] of granted) {
        const existed = Option.isSome(before) && before.value.subscriptions.has(filter)
        if (subscription.retainHandling === 2 || (subscription.retainHandling === 1 && existed)) continue
        if (parseSharedFilter(filter) !== undefined) continue
        for (const retained of core.router.retainedFor(filter)) {
          if (isExpired(retained, now)) continue
          // a filter may be granted while a topic under it is denied (`deny a/secret` under `a/#`)
          if (
            authorizer !== undefined &&
            !(yield* authorizer.authorize({ username: context.session.username, clientId, action: "receive", topic: retained.topic }))
          ) continue
          const message = withRetain(withQos(retained, minQos(retained.qos, subscription.qos as QoS)), true)
          const outgoing = yield* core.sessions.deliver(
            clientId,
            subscription.identifier === undefined ? message : { ...message, subscriptionIds: [subscription.identifier] },
            true
          )
          if (outgoing.length > 0) live.send(outgoing)
        }
      }
    })
  )
