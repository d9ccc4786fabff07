/**
 * CONNECT, as steps with one exit each:
 *
 * 1. `admit`: the address is under `--max-connect-rate`;
 * 2. `validate` (pure): protocol level, authentication method, client id, will;
 * 3. `reserveSeat`: room under `--max-connections`;
 * 4. `authenticate`: the certificate identity, the `Authenticator`, the will's topic through the
 *    `Authorizer` (the hook point for who may connect);
 * 5. `takeOverAndConnect`: close any live connection with the same client id (in a cluster, on any
 *    node: `Handover`), then create or resume the session, register the connection and answer
 *    CONNACK (sessionPresent tells whether one was resumed; MQTT 5 clients also learn the
 *    broker's limits from its properties).
 *
 * A step that refuses fails with `ConnectRefused`; `handleConnect` answers every refusal in one
 * place with the CONNACK `ConnectRefusal.connackFor` names.
 */
import { Clock, Effect } from "effect"
import { addressOf } from "../../auth/ConnectRate.ts"
import type { Principal } from "../../auth/Authenticator.ts"
import { randomUUID } from "node:crypto"
import type { BrokerConfig } from "../../config/BrokerConfig.ts"
import * as Codec from "../../protocol/Codec.ts"
import type { ConnectPacket } from "../../protocol/Packet.ts"
import { ConnackCode, ReasonCode } from "../../protocol/ReasonCode.ts"
import { isValidTopicName } from "../../protocol/Topic.ts"
import type { Message, QoS } from "../../session/Message.ts"
import type { SessionStoreError } from "../../session/SessionStateProvider.ts"
import type { Connected } from "../../session/Transitions.ts"
import type { LiveConnection } from "../ConnectionRegistry.ts"
import type { ConnectionContext } from "../ConnectionContext.ts"
import { codesFor, connackFor, type ConnectRefusalReason, ConnectRefused, type WillRefused } from "../ConnectRefusal.ts"
import type { Core } from "../Core.ts"
import * as Delivery from "../Delivery.ts"
import * as Handover from "../Handover.ts"
import * as TopicLimits from "../TopicLimits.ts"
import { toMessage } from "./publish.ts"

/** The largest packet MQTT can carry; below it, MQTT 5 CONNACK announces the broker's limit. */
const PROTOCOL_MAX_PACKET_SIZE = 268_435_455

/** What the connection lends CONNECT: its registry entry, and the news that the client is connected. */
export interface ConnectBinding {
  /** This connection's registry entry for `clientId`. */
  readonly makeLive: (clientId: string, topicAliasMaximum: number, maximumPacketSize: number | undefined) => LiveConnection
  /** Called once CONNACK is sent (MQTT 5: whether the client accepts reason strings). */
  readonly accepted: (problemInformation: boolean) => void
}

/** A CONNECT the broker can accept as far as the packet alone tells. */
export interface Validated {
  readonly version: 3 | 4 | 5
  readonly clientId: string
  /** Whether the broker made the client id up (MQTT 5 CONNACK then says which). */
  readonly assigned: boolean
  readonly will: Message | undefined
}

const refused = (reason: ConnectRefusalReason) => new ConnectRefused({ reason })

/** The client id to use (and whether the broker assigned it), or why it is refused (MQTT 3.1.1 §3.1.3.1, 3.1 §3.1, 5 §3.1.3.1). */
export const clientIdFor = (
  packet: ConnectPacket,
  version: 3 | 4 | 5,
  maxClientIdLength: number
): { readonly clientId: string; readonly assigned: boolean } | ConnectRefusalReason => {
  const id = packet.clientId
  const rejected = (detail: string): ConnectRefusalReason => ({ _tag: "ClientIdRejected", detail })
  if (id.length === 0) {
    if (version === 3) return rejected("empty client id (MQTT 3.1)")
    if (version === 4 && packet.clean === false) return rejected("empty client id with clean=0")
    return { clientId: `auto-${randomUUID()}`, assigned: true }
  }
  // the refused id goes into the reason: the log line's clientId is not set yet
  if (version === 3 && id.length > 23) return rejected(`client id ${JSON.stringify(id)} over 23 characters (MQTT 3.1)`)
  if (id.length > maxClientIdLength) {
    return rejected(`client id of ${id.length} characters refused (longest accepted: ${maxClientIdLength})`)
  }
  return { clientId: id, assigned: false }
}

/** The will as the message it will become, or why the broker refuses it. */
export const willOf = (packet: ConnectPacket, config: BrokerConfig): Message | undefined | WillRefused => {
  const will = packet.will
  if (will === undefined || will === null) return undefined
  const refuse = (detail: string, code: ReasonCode): WillRefused => ({ _tag: "WillRefused", detail, code })
  if (!isValidTopicName(will.topic)) return refuse(`invalid will topic ${JSON.stringify(will.topic)}`, ReasonCode.TopicNameInvalid)
  // a will is a PUBLISH made later: the limits a PUBLISH meets are checked now, when the client can be told
  const overLimit = TopicLimits.exceeded(will.topic, config.maxTopicLength, config.maxTopicLevels)
  if (overLimit !== undefined) return refuse(`will topic of ${overLimit}`, ReasonCode.TopicNameInvalid)
  const payloadLength = typeof will.payload === "string" ? Buffer.byteLength(will.payload) : will.payload.length
  if (config.maxPayloadSize > 0 && payloadLength > config.maxPayloadSize) {
    return refuse(`will payload of ${payloadLength} bytes, over --max-payload-size ${config.maxPayloadSize}`, ReasonCode.PacketTooLarge)
  }
  if ((will.qos ?? 0) > config.maximumQos) return refuse("will QoS above the maximum", ReasonCode.QosNotSupported)
  if (will.retain === true && !config.retainAvailable) return refuse("retained will", ReasonCode.RetainNotSupported)
  const { willDelayInterval: _delay, messageExpiryInterval: _expiry, ...properties } = will.properties ?? {}
  return toMessage({
    topic: will.topic,
    payload: typeof will.payload === "string" ? Buffer.from(will.payload) : will.payload,
    qos: (will.qos ?? 0) as QoS,
    retain: will.retain ?? false,
    properties
  })
}

/** Step 2 (pure): what the packet alone tells — protocol level, authentication method, client id, will. */
export const validate = (packet: ConnectPacket, config: BrokerConfig): Validated | ConnectRefusalReason => {
  const version = packet.protocolVersion ?? 4
  if (version !== 3 && version !== 4 && version !== 5) return { _tag: "UnsupportedProtocolLevel", level: version }
  const method = packet.properties?.authenticationMethod
  if (method !== undefined) return { _tag: "BadAuthenticationMethod", method }
  const id = clientIdFor(packet, version, config.maxClientIdLength)
  if ("_tag" in id) return id
  const will = willOf(packet, config)
  if (will !== undefined && "_tag" in will) return will
  return { version, clientId: id.clientId, assigned: id.assigned, will }
}

/** Step 1: the address is under `--max-connect-rate` (first, so a flood costs no password check nor session work). */
const admit = (context: ConnectionContext): Effect.Effect<void, ConnectRefused> => {
  const { core } = context
  // a WebSocket connection counts under its upgrade request's peer address
  const address = core.connectRate === undefined ? undefined : addressOf(context.remote)
  if (address === undefined) return Effect.void
  return Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const verdict = core.connectRate!.take(address, now)
    return verdict.allowed ? Effect.void : Effect.fail(
      refused({ _tag: "RateExceeded", address, limit: core.config.maxConnectsPerSecond, report: verdict.report })
    )
  })
}

/**
 * Step 3: a place under `--max-connections`, kept until the connection is registered (or its
 * teardown gives it back). A takeover replaces a connection rather than adding one: never refused.
 */
const reserveSeat = (context: ConnectionContext, clientId: string): Effect.Effect<void, ConnectRefused> =>
  Effect.suspend(() => {
    const { core } = context
    const limit = core.config.maxConnections
    if (limit === 0 || core.registry.get(clientId) !== undefined) return Effect.void
    if (core.registry.occupied >= limit) return Effect.fail(refused({ _tag: "ServerFull", limit, clientId }))
    context.session.releaseSeat = core.registry.reserve()
    return Effect.void
  })

/** Step 4: who the client is (before any session is touched: a refused client neither takes over nor sees a session). */
const authenticate = (
  context: ConnectionContext,
  packet: ConnectPacket,
  validated: Validated
): Effect.Effect<Principal, ConnectRefused> =>
  Effect.gen(function*() {
    const { core } = context
    const { clientId, version, will } = validated
    // Mosquitto's use_identity_as_username: on the TLS listener the verified certificate's CN
    // replaces the CONNECT's user name and password, so the Authenticator and the ACLs see it
    const certificate = core.config.tls?.useIdentityAsUsername === true ? context.certificate : undefined
    if (certificate !== undefined && certificate.commonName === undefined) {
      return yield* refused({ _tag: "NoCertificateName", clientId })
    }
    const username = certificate === undefined ? packet.username : certificate.commonName
    const principal = yield* core.authenticator.authenticate({
      clientId,
      username,
      password: certificate === undefined ? packet.password : undefined,
      certified: certificate !== undefined,
      remote: context.remote,
      protocolVersion: version
    }).pipe(
      Effect.catchTag("AuthenticationRefused", (refusal) => {
        // counted per address: over `maxAuthFailuresPerSecond`, its next connections are closed unread
        const from = core.authFailures === undefined ? undefined : addressOf(context.remote)
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          if (from !== undefined) core.authFailures!.spend(from, now)
          return Effect.fail(refused({ _tag: "NotAuthenticated", refused: refusal, username, clientId }))
        })
      })
    )
    // a will is a PUBLISH made later on the client's behalf: a topic it may not write is refused now, as Mosquitto does
    if (
      will !== undefined && core.authorizer !== undefined &&
      !(yield* core.authorizer.authorize({ username: principal.username, clientId, action: "publish", topic: will.topic }))
    ) {
      return yield* refused({ _tag: "WillNotAuthorized", topic: will.topic, clientId })
    }
    return principal
  })

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

/** The keepalive the client is told to use (MQTT 5 only, when the broker's limit applies). */
export const serverKeepAliveFor = (version: number, requested: number, maxKeepalive: number): number | undefined =>
  version === 5 && maxKeepalive > 0 && (requested === 0 || requested > maxKeepalive) ? maxKeepalive : undefined

/** What the session layer is asked for, and what CONNACK says besides. */
interface Accepting {
  readonly request: Parameters<Core["sessions"]["connect"]>[0]
  readonly live: LiveConnection
  readonly connack: (sessionPresent: boolean) => Buffer
}

/**
 * Step 5: the session, once no other connection holds this client id. Any live one is taken
 * over first (outside the lock: its teardown needs it); if another CONNECT for the same id got
 * in meanwhile, the step starts again.
 */
const takeOverAndConnect = (
  context: ConnectionContext,
  accepting: Accepting,
  binding: ConnectBinding,
  problemInformation: boolean
): Effect.Effect<Connected, SessionStoreError> =>
  Effect.suspend(() => {
    const { core } = context
    const { clientId } = accepting.request
    const previous = core.registry.get(clientId)
    if (previous !== undefined) {
      return Effect.logInfo("session taken over by a new connection").pipe(
        Effect.annotateLogs({ clientId }),
        Effect.andThen(previous.takeOver),
        Effect.andThen(takeOverAndConnect(context, accepting, binding, problemInformation))
      )
    }
    const connectNow = core.locks.withLock(
      clientId,
      Effect.suspend(() => {
        if (core.registry.get(clientId) !== undefined) return Effect.succeed(undefined)
        return Effect.map(core.sessions.connect(accepting.request), (result) => {
          core.expiry.cancel(clientId)
          if (result.discarded !== undefined) core.router.subscriptions.removeClient(clientId, result.discarded.subscriptions.keys())
          core.registry.set(accepting.live)
          context.session.releaseSeat?.()
          core.stats.accept(core.registry.size)
          context.session.live = accepting.live
          binding.accepted(problemInformation)
          context.outbox.send(accepting.connack(result.sessionPresent))
          accepting.live.send(result.outgoing)
          return result
        })
      })
    )
    return Effect.flatMap(connectNow, (connected) =>
      connected === undefined ? takeOverAndConnect(context, accepting, binding, problemInformation) : Effect.succeed(connected))
  })

/** Steps 1 to 5; every refusal fails with `ConnectRefused`. */
const connect = Effect.fnUntraced(function*(context: ConnectionContext, packet: ConnectPacket, binding: ConnectBinding) {
  const { core } = context
  const { config } = core
  yield* admit(context)
  const validated = validate(packet, config)
  if ("_tag" in validated) return yield* refused(validated)
  const { version, clientId, assigned, will } = validated
  yield* reserveSeat(context, clientId)
  const principal = yield* authenticate(context, packet, validated)

  const properties = packet.properties ?? {}
  const clean = packet.clean !== false
  const expiryInterval = version === 5 ? properties.sessionExpiryInterval ?? 0 : clean ? 0 : config.persistentSessionExpiry
  const requested = packet.keepalive ?? 0
  // MQTT 5 clients are told the broker's limit; older ones keep theirs (they could not be told)
  const serverKeepAlive = serverKeepAliveFor(version, requested, config.maxKeepalive)
  const { session, protocol } = context
  session.clientId = clientId
  session.username = principal.username
  session.connectExpiry = expiryInterval
  protocol.keepaliveMs = (serverKeepAlive ?? requested) * 1000
  const maximumPacketSize = version === 5 ? properties.maximumPacketSize : undefined
  const accepting: Accepting = {
    request: {
      clientId,
      clean,
      expiryInterval,
      receiveMaximum: Math.min(version === 5 ? properties.receiveMaximum ?? 65_535 : 65_535, config.maxInflightMessages),
      will,
      willDelayInterval: version === 5 ? packet.will?.properties?.willDelayInterval ?? 0 : 0,
      maximumPacketSize
    },
    live: binding.makeLive(clientId, version === 5 ? Math.min(properties.topicAliasMaximum ?? 0, config.outboundTopicAliases) : 0, maximumPacketSize),
    connack: (sessionPresent) =>
      version === 5
        ? Codec.encode({
          cmd: "connack",
          reasonCode: ReasonCode.Success,
          sessionPresent,
          properties: connackProperties(config, assigned ? clientId : undefined, serverKeepAlive)
        }, 5)
        : Codec.encode({ cmd: "connack", returnCode: ConnackCode.Accepted, sessionPresent }, version)
  }
  // in a cluster, a node where this client id is live (or its session is routed) lets it go first
  if (core.cluster !== undefined) yield* core.cluster.claim(clientId)
  const connected = yield* takeOverAndConnect(context, accepting, binding, properties.requestProblemInformation !== false)
  if (core.cluster !== undefined) yield* Handover.settle(core, clientId, connected)
  // a delayed will that was due, or left waiting in the session this CONNECT ended, goes out now
  if (connected.will !== undefined) yield* Delivery.publish(core, connected.will, clientId)
  yield* Effect.logInfo("client connected").pipe(
    Effect.annotateLogs({ clientId, clean, protocolVersion: version, keepalive: protocol.keepaliveMs / 1000, expiry: expiryInterval, reasonCode: ReasonCode.Success })
  )
})

/** The CONNACK bytes that answer a refusal, if the spec has one for it. */
export const refusalConnack = (reason: ConnectRefusalReason, version: number): Buffer | undefined => {
  const connack = connackFor(reason, version)
  if (connack === undefined) return undefined
  return connack.protocolVersion === 5
    ? Codec.encode({ cmd: "connack", reasonCode: connack.reasonCode, sessionPresent: false }, 5)
    : Codec.encode({ cmd: "connack", returnCode: connack.returnCode, sessionPresent: false }, 4)
}

/** Handles the first packet of a connection: a refusal is counted and answered here, then the connection closes. */
export const handleConnect = (context: ConnectionContext, packet: ConnectPacket, binding: ConnectBinding) => {
  context.protocol.version = packet.protocolVersion ?? 4
  return connect(context, packet, binding).pipe(
    Effect.catchTag("ConnectRefused", (refusal) =>
      Effect.suspend(() => {
        context.core.stats.refuse(codesFor(refusal.reason).v5)
        const connack = refusalConnack(refusal.reason, context.protocol.version)
        if (connack !== undefined) context.outbox.send(connack)
        return Effect.fail(refusal)
      }))
  )
}
