/**
 * CONNECT: validate, authenticate (the `Authenticator` service), take over any live connection
 * with the same client id, then create or resume the session and answer CONNACK (sessionPresent tells whether one was resumed;
 * MQTT 5 clients also learn the broker's limits from its properties).
 */
import { Clock, Effect } from "effect"
import { connackCodes } from "../../auth/Authenticator.ts"
import { addressOf } from "../../auth/ConnectRate.ts"
import { NotAuthorized } from "../../auth/Authorizer.ts"
import { randomUUID } from "node:crypto"
import type { BrokerConfig } from "../../config/BrokerConfig.ts"
import * as Codec from "../../protocol/Codec.ts"
import { ConnackCode, type ConnectPacket } from "../../protocol/Packet.ts"
import { isValidTopicName } from "../../protocol/Topic.ts"
import type { Message, QoS } from "../../session/Message.ts"
import type { LiveConnection } from "../ConnectionRegistry.ts"
import { type ConnectionContext, ProtocolViolation, ReasonCode } from "../ConnectionContext.ts"
import * as Delivery from "../Delivery.ts"
import * as TopicLimits from "../TopicLimits.ts"
import { toMessage } from "./publish.ts"

/** The largest packet MQTT can carry; below it, MQTT 5 CONNACK announces the broker's limit. */
const PROTOCOL_MAX_PACKET_SIZE = 268_435_455

/** Sends a refusing CONNACK (3.1.1 return code or MQTT 5 reason code); the caller closes. */
const refuse = (context: ConnectionContext, version: number, code3: number, code5: number, reason: string) => {
  context.core.stats.refuse(code5)
  context.outbox.send(
    version === 5
      ? Codec.encode({ cmd: "connack", reasonCode: code5, sessionPresent: false }, 5)
      : Codec.encode({ cmd: "connack", returnCode: code3, sessionPresent: false }, 4)
  )
  return new ProtocolViolation({ reason, disconnect: false })
}

/** The client id to use (and whether the broker assigned it), or the refusal (MQTT 3.1.1 §3.1.3.1, 3.1 §3.1, 5 §3.1.3.1). */
const clientIdFor = (context: ConnectionContext, packet: ConnectPacket, version: number) => {
  const id = packet.clientId
  const rejected = (reason: string) =>
    refuse(context, version, ConnackCode.IdentifierRejected, ReasonCode.ClientIdentifierNotValid, reason)
  if (id.length === 0) {
    if (version === 3) return rejected("empty client id (MQTT 3.1)")
    if (version === 4 && packet.clean === false) return rejected("empty client id with clean=0")
    return { clientId: `auto-${randomUUID()}`, assigned: true }
  }
  // the refused id goes into the reason: the log line's clientId is not set yet
  if (version === 3 && id.length > 23) return rejected(`client id ${JSON.stringify(id)} over 23 characters (MQTT 3.1)`)
  if (id.length > context.core.config.maxClientIdLength) {
    return rejected(`client id of ${id.length} characters refused (longest accepted: ${context.core.config.maxClientIdLength})`)
  }
  return { clientId: id, assigned: false }
}

const willOf = (packet: ConnectPacket, config: BrokerConfig): Message | undefined | ProtocolViolation => {
  const will = packet.will
  if (will === undefined || will === null) return undefined
  if (!isValidTopicName(will.topic)) {
    return new ProtocolViolation({ reason: `invalid will topic ${JSON.stringify(will.topic)}`, code: ReasonCode.TopicNameInvalid })
  }
  // a will is a PUBLISH made later: the limits a PUBLISH meets are checked now, when the client can be told
  const overLimit = TopicLimits.exceeded(will.topic, config.maxTopicLength, config.maxTopicLevels)
  if (overLimit !== undefined) return new ProtocolViolation({ reason: `will topic of ${overLimit}`, code: ReasonCode.TopicNameInvalid })
  const payloadLength = typeof will.payload === "string" ? Buffer.byteLength(will.payload) : will.payload.length
  if (config.maxPayloadSize > 0 && payloadLength > config.maxPayloadSize) {
    return new ProtocolViolation({ reason: `will payload of ${payloadLength} bytes, over --max-payload-size ${config.maxPayloadSize}`, code: ReasonCode.PacketTooLarge })
  }
  if ((will.qos ?? 0) > config.maximumQos) return new ProtocolViolation({ reason: "will QoS above the maximum", code: ReasonCode.QosNotSupported })
  if (will.retain === true && !config.retainAvailable) return new ProtocolViolation({ reason: "retained will", code: ReasonCode.RetainNotSupported })
  const { willDelayInterval: _delay, messageExpiryInterval: _expiry, ...properties } = will.properties ?? {}
  return toMessage({
    topic: will.topic,
    payload: typeof will.payload === "string" ? Buffer.from(will.payload) : will.payload,
    qos: (will.qos ?? 0) as QoS,
    retain: will.retain ?? false,
    properties
  })
}

/** MQTT 5 CONNACK properties: what the client may do here, when it differs from the protocol's defaults. */
const connackProperties = (config: BrokerConfig, assignedClientId: string | undefined, serverKeepAlive: number | undefined) => ({
  ...(assignedClientId !== undefined ? { assignedClientIdentifier: assignedClientId } : {}),
  ...(serverKeepAlive !== undefined ? { serverKeepAlive } : {}),
  ...(config.receiveMaximum < 65_535 ? { receiveMaximum: config.receiveMaximum } : {}),
  ...(config.maximumQos < 2 ? { maximumQoS: config.maximumQos } : {}),
  ...(config.retainAvailable ? {} : { retainAvailable: false }),
  ...(config.maxPacketSize < PROTOCOL_MAX_PACKET_SIZE ? { maximumPacketSize: config.maxPacketSize } : {}),
  ...(config.topicAliasMaximum > 0 ? { topicAliasMaximum: config.topicAliasMaximum } : {}),
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifiersAvailable: true,
  sharedSubscriptionAvailable: true
})

/** Handles the first packet of a connection. */
export const handleConnect = Effect.fnUntraced(function*(
  context: ConnectionContext,
  packet: ConnectPacket,
  makeLive: (clientId: string, topicAliasMaximum: number, maximumPacketSize: number | undefined) => LiveConnection
) {
  const { core } = context
  const { config } = core
  const version = packet.protocolVersion ?? 4
  context.protocolVersion = version
  // first, so a flood from one address costs no password check nor session work per CONNECT
  // (a WebSocket connection counts under its upgrade request's peer address)
  const address = core.connectRate === undefined ? undefined : addressOf(context.remote)
  if (address !== undefined) {
    const verdict = core.connectRate!.take(address, yield* Clock.currentTimeMillis)
    if (!verdict.allowed) {
      core.stats.refuse(ReasonCode.ConnectionRateExceeded)
      // 3.1.1 has no code for it: closed without CONNACK. One warning a second per address.
      if (version === 5) context.outbox.send(Codec.encode({ cmd: "connack", reasonCode: ReasonCode.ConnectionRateExceeded, sessionPresent: false }, 5))
      return yield* new ProtocolViolation({
        reason: verdict.report === undefined
          ? `CONNECT from ${address} refused: over --max-connect-rate ${config.maxConnectsPerSecond}`
          : `CONNECT from ${address} refused: over --max-connect-rate ${config.maxConnectsPerSecond} (${verdict.report} refused since the last such line; more are logged at debug for a second)`,
        disconnect: false,
        quiet: verdict.report === undefined
      })
    }
  }
  if (version !== 3 && version !== 4 && version !== 5) {
    return yield* refuse(context, 4, ConnackCode.UnacceptableProtocolVersion, ReasonCode.UnsupportedProtocolVersion, `unsupported protocol level ${version}`)
  }
  const properties = packet.properties ?? {}
  if (properties.authenticationMethod !== undefined) {
    return yield* refuse(context, version, ConnackCode.NotAuthorized, ReasonCode.BadAuthenticationMethod, `unsupported authentication method ${properties.authenticationMethod}`)
  }
  const id = clientIdFor(context, packet, version)
  if (id instanceof ProtocolViolation) return yield* id
  const { assigned, clientId } = id
  // before authentication, so refused clients cost no password check; a takeover replaces a
  // connection rather than adding one, so it is never refused
  if (config.maxConnections > 0 && core.registry.get(clientId) === undefined) {
    if (core.registry.occupied >= config.maxConnections) {
      return yield* refuse(context, version, ConnackCode.ServerUnavailable, ReasonCode.QuotaExceeded, `connection refused: --max-connections ${config.maxConnections} reached (client id ${JSON.stringify(clientId)})`)
    }
    // given back once registered below, or by the connection's teardown
    context.releaseSeat = core.registry.reserve()
  }
  const will = willOf(packet, config)
  if (will instanceof ProtocolViolation) {
    // 3.1.1 has no return code for an invalid will topic: the packet is malformed, so close [MQTT-3.1.4-1]
    if (version !== 5 && will.code === ReasonCode.TopicNameInvalid) return yield* new ProtocolViolation({ reason: will.reason, disconnect: false })
    return yield* refuse(context, version, ConnackCode.ServerUnavailable, will.code ?? ReasonCode.ProtocolError, will.reason)
  }
  // Mosquitto's use_identity_as_username: on the TLS listener the verified certificate's CN
  // replaces the CONNECT's user name and password, so the Authenticator and the ACLs see it
  const certificate = config.tls?.useIdentityAsUsername === true ? context.certificate : undefined
  if (certificate !== undefined && certificate.commonName === undefined) {
    return yield* refuse(context, version, ConnackCode.NotAuthorized, NotAuthorized, `no client certificate common name to use as the user name (client id ${JSON.stringify(clientId)})`)
  }
  const username = certificate === undefined ? packet.username : certificate.commonName
  // before any session is touched: a refused client neither takes over nor sees a session
  const principal = yield* core.authenticator.authenticate({
    clientId,
    username,
    password: certificate === undefined ? packet.password : undefined,
    certified: certificate !== undefined,
    remote: context.remote,
    protocolVersion: version
  }).pipe(
    Effect.catchTag("AuthenticationRefused", (refused) => {
      // counted per address: over `maxAuthFailuresPerSecond`, its next connections are closed unread
      const from = core.authFailures === undefined ? undefined : addressOf(context.remote)
      const codes = connackCodes(refused.reason)
      const who = username === undefined ? "anonymous" : `user ${JSON.stringify(username)}`
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (from !== undefined) core.authFailures!.spend(from, now)
        return Effect.fail(refuse(context, version, codes.v3, codes.v5, `${refused.message} (${who}, client id ${JSON.stringify(clientId)})`))
      })
    })
  )
  // a will is a PUBLISH made later on the client's behalf: a topic it may not write is refused now, as Mosquitto does
  if (
    will !== undefined && core.authorizer !== undefined &&
    !(yield* core.authorizer.authorize({ username: principal.username, clientId, action: "publish", topic: will.topic }))
  ) {
    return yield* refuse(context, version, ConnackCode.NotAuthorized, NotAuthorized, `will topic ${JSON.stringify(will.topic)} not authorized (client id ${JSON.stringify(clientId)})`)
  }

  const clean = packet.clean !== false
  const expiryInterval = version === 5
    ? properties.sessionExpiryInterval ?? 0
    : clean ? 0 : config.persistentSessionExpiry
  const requested = packet.keepalive ?? 0
  // MQTT 5 clients are told the broker's limit; older ones keep theirs (they could not be told)
  const serverKeepAlive = version === 5 && config.maxKeepalive > 0 && (requested === 0 || requested > config.maxKeepalive)
    ? config.maxKeepalive
    : undefined
  context.clientId = clientId
  context.username = principal.username
  context.keepaliveMs = (serverKeepAlive ?? requested) * 1000
  context.problemInformation = properties.requestProblemInformation !== false
  context.connectExpiry = expiryInterval
  const maximumPacketSize = version === 5 ? properties.maximumPacketSize : undefined
  const live = makeLive(clientId, version === 5 ? Math.min(properties.topicAliasMaximum ?? 0, config.outboundTopicAliases) : 0, maximumPacketSize)
  const request = {
    clientId,
    clean,
    expiryInterval,
    receiveMaximum: Math.min(version === 5 ? properties.receiveMaximum ?? 65_535 : 65_535, config.maxInflightMessages),
    will,
    willDelayInterval: version === 5 ? packet.will?.properties?.willDelayInterval ?? 0 : 0,
    maximumPacketSize
  }

  // Take over: close any live connection with this id (outside the lock: its teardown needs it),
  // and repeat if another CONNECT for the same id got in first.
  while (true) {
    const previous = core.registry.get(clientId)
    if (previous !== undefined) {
      yield* Effect.logInfo("session taken over by a new connection").pipe(Effect.annotateLogs({ clientId }))
      yield* previous.takeOver
      continue
    }
    const connected = yield* core.locks.withLock(
      clientId,
      Effect.suspend(() => {
        if (core.registry.get(clientId) !== undefined) return Effect.succeed(undefined)
        return Effect.map(core.sessions.connect(request), (result) => {
          core.expiry.cancel(clientId)
          if (result.discarded !== undefined) {
            core.router.subscriptions.removeClient(clientId, result.discarded.subscriptions.keys())
          }
          core.registry.set(live)
          context.releaseSeat?.()
          core.stats.accept(core.registry.size)
          context.live = live
          context.phase = "connected"
          context.outbox.send(
            version === 5
              ? Codec.encode({
                cmd: "connack",
                reasonCode: ReasonCode.Success,
                sessionPresent: result.sessionPresent,
                properties: connackProperties(config, assigned ? clientId : undefined, serverKeepAlive)
              }, 5)
              : Codec.encode({ cmd: "connack", returnCode: ConnackCode.Accepted, sessionPresent: result.sessionPresent }, version)
          )
          live.send(result.outgoing)
          return result
        })
      })
    )
    if (connected === undefined) continue
    // a delayed will that was due, or left waiting in the session this CONNECT ended, goes out now
    if (connected.will !== undefined) yield* Delivery.publish(core, connected.will, clientId)
    break
  }
  yield* Effect.logInfo("client connected").pipe(
    Effect.annotateLogs({ clientId, clean, protocolVersion: version, keepalive: context.keepaliveMs / 1000, expiry: expiryInterval, reasonCode: ReasonCode.Success })
  )
})
