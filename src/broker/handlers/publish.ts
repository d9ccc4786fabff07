/**
 * Inbound PUBLISH and PUBREL. QoS 1 is acknowledged after it has been routed; QoS 2 is
 * forwarded on its first PUBLISH only (the session remembers the packet id until PUBREL),
 * so a re-sent PUBLISH before PUBREL is not delivered twice. MQTT 5: topic aliases are
 * resolved, the broker's limits enforced, properties kept for the subscribers. A PUBLISH the
 * `Authorizer` denies is not routed (MQTT 5: PUBACK / PUBREC 0x87).
 */
import { Clock, Effect } from "effect"
import { isUtf8 } from "node:buffer"
import { NotAuthorized } from "../../auth/Authorizer.ts"
import * as Codec from "../../protocol/Codec.ts"
import type { PublishPacket, PubrelPacket } from "../../protocol/Packet.ts"
import { isValidTopicName } from "../../protocol/Topic.ts"
import { Router } from "../../routing/Router.ts"
import type { Message, PublishProperties, QoS, UserProperty } from "../../session/Message.ts"
import { ReasonCode } from "../../protocol/ReasonCode.ts"
import { type ConnectionContext, whileOwner } from "../ConnectionContext.ts"
import { ProtocolViolation } from "../ProtocolViolation.ts"
import * as TopicLimits from "../TopicLimits.ts"
import * as Delivery from "../Delivery.ts"
import type { SessionStoreError } from "../../session/SessionStateProvider.ts"

/** User properties as mqtt-packet parses them: repeated names grouped into arrays. */
type GroupedUserProperties = Readonly<Record<string, string | ReadonlyArray<string>>>

/** The PUBLISH fields a message is made of (a PUBLISH packet, or a will). */
export interface PublishFields {
  readonly topic: string
  readonly payload: Uint8Array
  readonly qos: QoS
  readonly retain: boolean
  readonly properties?:
    | (Omit<PublishProperties, "userProperties"> & {
      readonly messageExpiryInterval?: number | undefined
      readonly userProperties?: GroupedUserProperties | undefined
    })
    | undefined
  /** The user properties in wire order, when the packet's bytes were available to read them. */
  readonly orderedUserProperties?: ReadonlyArray<UserProperty> | undefined
}

/** Grouped user properties flattened: each name's values in order, names in first-seen order. */
const flatten = (grouped: GroupedUserProperties): Array<UserProperty> =>
  Object.entries(grouped).flatMap(([name, value]) =>
    (typeof value === "string" ? [value] : value).map((v): UserProperty => [name, v])
  )

/** The message to route: forwarded properties only (no alias, no subscription ids), expiry made absolute. */
export const toMessage = (fields: PublishFields, now = 0): Message => {
  const p = fields.properties
  // 3.1.1, and MQTT 5 without properties: one plain object of a single shape
  if (p === undefined) return { topic: fields.topic, payload: fields.payload, qos: fields.qos, retain: fields.retain }
  const properties: { -readonly [K in keyof PublishProperties]: PublishProperties[K] } = {}
  let any = false
  if (p !== undefined) {
    if (p.payloadFormatIndicator !== undefined) (properties.payloadFormatIndicator = p.payloadFormatIndicator), (any = true)
    if (p.contentType !== undefined) (properties.contentType = p.contentType), (any = true)
    if (p.responseTopic !== undefined) (properties.responseTopic = p.responseTopic), (any = true)
    if (p.correlationData !== undefined) (properties.correlationData = p.correlationData), (any = true)
    if (p.userProperties !== undefined) {
      properties.userProperties = fields.orderedUserProperties ?? flatten(p.userProperties)
      any = true
    }
  }
  const expiry = p?.messageExpiryInterval
  return {
    topic: fields.topic,
    payload: fields.payload,
    qos: fields.qos,
    retain: fields.retain,
    ...(any ? { properties } : {}),
    ...(expiry !== undefined ? { expiresAt: now + expiry * 1000 } : {})
  }
}

// once what the PUBLISH changed is durable (a persistent provider), in the order PUBLISHes came;
// the connection meanwhile goes on reading, so one commit covers many PUBLISHes
const ack = (context: ConnectionContext, type: "puback" | "pubrec", packetId: number, reasonCode: ReasonCode) =>
  context.core.sessions.whenDurable(() =>
    context.outbox.send(
      reasonCode === ReasonCode.Success || context.protocol.version !== 5
        ? Codec.encodeAck(type, packetId)
        : Codec.encode({ cmd: type, messageId: packetId, reasonCode }, 5)
    )
  )

/** Resolves an MQTT 5 topic alias: records it with a topic, or looks the topic up without one. */
const resolveTopic = (context: ConnectionContext, packet: PublishPacket): string | ProtocolViolation => {
  const alias = packet.properties?.topicAlias
  if (alias === undefined) return packet.topic
  if (alias === 0 || alias > context.core.config.topicAliasMaximum) {
    return new ProtocolViolation({ reason: `topic alias ${alias} out of range`, code: ReasonCode.TopicAliasInvalid })
  }
  if (packet.topic.length > 0) {
    ;(context.protocol.inboundAliases ??= new Map()).set(alias, packet.topic)
    return packet.topic
  }
  return context.protocol.inboundAliases?.get(alias) ??
    new ProtocolViolation({ reason: `unknown topic alias ${alias}`, code: ReasonCode.ProtocolError })
}

/** The checks a PUBLISH must pass before anything else: its topic (alias resolved), or the violation. */
const check = (context: ConnectionContext, packet: PublishPacket): string | ProtocolViolation => {
  const { config } = context.core
  const topic = resolveTopic(context, packet)
  if (topic instanceof ProtocolViolation) return topic
  if (!isValidTopicName(topic)) {
    return new ProtocolViolation({ reason: `invalid topic name ${JSON.stringify(topic)}`, code: ReasonCode.TopicNameInvalid })
  }
  const overLimit = TopicLimits.exceeded(topic, config.maxTopicLength, config.maxTopicLevels)
  if (overLimit !== undefined) {
    // the operator's bound, not the protocol's: still a topic this broker will not take (0x90)
    return new ProtocolViolation({ reason: `topic name of ${overLimit}`, code: ReasonCode.TopicNameInvalid })
  }
  if (packet.qos > config.maximumQos) {
    return new ProtocolViolation({ reason: `QoS ${packet.qos} above the maximum`, code: ReasonCode.QosNotSupported })
  }
  if (packet.retain && !config.retainAvailable) {
    return new ProtocolViolation({ reason: "retain is not available", code: ReasonCode.RetainNotSupported })
  }
  if (packet.properties?.subscriptionIdentifier !== undefined) {
    return new ProtocolViolation({ reason: "a client PUBLISH carried a subscription identifier" })
  }
  return topic
}

/** The message fields of a PUBLISH. */
const fieldsOf = (packet: PublishPacket, topic: string, payload: Uint8Array): PublishFields => ({
  topic,
  payload,
  qos: packet.qos,
  retain: packet.retain,
  properties: packet.properties,
  orderedUserProperties: (packet as { orderedUserProperties?: ReadonlyArray<UserProperty> }).orderedUserProperties
})

/**
 * Handles a PUBLISH from the client. The common case (QoS 0 or 1, no `Authorizer`, no payload
 * limit hit, no message expiry) is handled when this is called, without building an Effect, as
 * far as `Delivery.publishNow` can go; the reader runs the returned Effect at once, so that is
 * the same order. Everything else goes through `handleChecked`.
 */
export const handlePublish = (
  context: ConnectionContext,
  packet: PublishPacket
): Effect.Effect<void, ProtocolViolation | SessionStoreError> => {
  const topic = check(context, packet)
  if (topic instanceof ProtocolViolation) return Effect.fail(topic)
  const { core } = context
  const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload
  core.stats.publishReceived++
  core.stats.publishBytesReceived += payload.length
  if (
    packet.qos === 2 || core.authorizer !== undefined ||
    (core.config.maxPayloadSize > 0 && payload.length > core.config.maxPayloadSize) ||
    packet.properties?.payloadFormatIndicator === true || packet.properties?.messageExpiryInterval !== undefined
  ) return handleChecked(context, packet, topic, payload)
  // no expiry: the message does not depend on the time; without properties (3.1.1, most MQTT 5)
  // it is the one plain shape `toMessage` would make, built without the intermediate fields
  const rest = Router.acceptsPublish(topic)
    ? Delivery.publishNow(
      core,
      packet.properties === undefined
        ? { topic, payload, qos: packet.qos, retain: packet.retain }
        : toMessage(fieldsOf(packet, topic, payload)),
      context.session.clientId
    )
    : undefined
  if (packet.qos === 0) return rest ?? Effect.void
  const packetId = packet.messageId ?? 0
  if (rest === undefined) {
    ack(context, "puback", packetId, ReasonCode.Success)
    return Effect.void
  }
  return Effect.map(rest, () => ack(context, "puback", packetId, ReasonCode.Success))
}

/** A PUBLISH past `check` that needs more than the fast path: limits, authorization, expiry, QoS 2. */
const handleChecked = Effect.fnUntraced(function*(
  context: ConnectionContext,
  packet: PublishPacket,
  topic: string,
  payload: Uint8Array
) {
  const { config } = context.core
  const packetId = packet.messageId ?? 0
  if (config.maxPayloadSize > 0 && payload.length > config.maxPayloadSize) {
    // as Mosquitto's message_size_limit: not routed, the flow completed so the client does not resend
    // it. MQTT 5 is told 0x97 quota exceeded: Mosquitto sends 0x95, which the spec does not allow in
    // PUBACK / PUBREC (mqtt.js refuses the packet). 3.1.1 cannot be told, nor can a QoS 0 sender.
    yield* Effect.logInfo(`PUBLISH of ${payload.length} bytes dropped: over --max-payload-size ${config.maxPayloadSize}`).pipe(
      Effect.annotateLogs({ clientId: context.session.clientId, topic })
    )
    if (packet.qos === 0) return
    return ack(context, packet.qos === 1 ? "puback" : "pubrec", packetId, ReasonCode.QuotaExceeded)
  }
  if (packet.properties?.payloadFormatIndicator === true && !isUtf8(payload)) {
    // MQTT 5: a payload declared UTF-8 that is not is refused (PUBACK/PUBREC 0x99, or DISCONNECT at QoS 0)
    if (packet.qos === 0) return yield* new ProtocolViolation({ reason: "payload is not UTF-8", code: ReasonCode.PayloadFormatInvalid })
    return ack(context, packet.qos === 1 ? "puback" : "pubrec", packetId, ReasonCode.PayloadFormatInvalid)
  }
  // `$SYS` belongs to the broker: acknowledged (so the client does not retry) but not routed, as Mosquitto does
  const { authorizer } = context.core
  const permitted = authorizer === undefined ||
    (yield* authorizer.authorize({ username: context.session.username, clientId: context.session.clientId, action: "publish", topic }))
  if (!permitted && context.protocol.version === 5) {
    // MQTT 5 can say so: PUBACK / PUBREC 0x87 ends the flow, nothing routed or stored (QoS 0: just dropped)
    if (packet.qos === 0) return
    return ack(context, packet.qos === 1 ? "puback" : "pubrec", packetId, NotAuthorized)
  }
  // 3.1.1 has no code for it: a denied PUBLISH is dropped like a `$SYS` one, its QoS flow completed
  const routable = permitted && Router.acceptsPublish(topic)
  const message = () => Effect.map(Clock.currentTimeMillis, (now) => toMessage(fieldsOf(packet, topic, payload), now))
  switch (packet.qos) {
    case 0: {
      if (routable) yield* Delivery.publish(context.core, yield* message(), context.session.clientId)
      return
    }
    case 1: {
      if (routable) yield* Delivery.publish(context.core, yield* message(), context.session.clientId)
      return ack(context, "puback", packetId, ReasonCode.Success)
    }
    case 2: {
      const verdict = yield* whileOwner(context, () =>
        Effect.gen(function*() {
          const { core } = context
          const { clientId } = context.session
          const stored = yield* core.sessions.get(clientId)
          const awaiting = stored._tag === "Some" ? stored.value.awaitingPubrel : []
          if (awaiting.length >= config.receiveMaximum && !awaiting.includes(packetId)) return "exceeded" as const
          return (yield* core.sessions.receiveQos2(clientId, packetId)) ? "forward" as const : "duplicate" as const
        }))
      if (verdict === "exceeded") {
        return yield* new ProtocolViolation({ reason: "receive maximum exceeded", code: ReasonCode.ReceiveMaximumExceeded })
      }
      if (verdict === "forward" && routable) yield* Delivery.publish(context.core, yield* message(), context.session.clientId)
      return ack(context, "pubrec", packetId, ReasonCode.Success)
    }
  }
})

/** Handles PUBREL: the inbound QoS 2 packet id is released and PUBCOMP sent (also for unknown ids). */
export const handlePubrel = Effect.fnUntraced(function*(context: ConnectionContext, packet: PubrelPacket) {
  const packetId = packet.messageId ?? 0
  yield* whileOwner(context, () => context.core.sessions.pubrel(context.session.clientId, packetId))
  context.outbox.send(Codec.encodeAck("pubcomp", packetId))
})
