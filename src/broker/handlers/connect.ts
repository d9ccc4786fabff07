/**
 * CONNECT: validate, take over any live connection with the same client id, then create
 * or resume the session and answer CONNACK (sessionPresent tells whether one was resumed).
 */
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import * as Codec from "../../protocol/Codec.ts"
import { ConnackCode, type ConnectPacket } from "../../protocol/Packet.ts"
import { isValidTopicName } from "../../protocol/Topic.ts"
import type { Message, QoS } from "../../session/Message.ts"
import { EXPIRY_NEVER } from "../../session/SessionState.ts"
import type { LiveConnection } from "../ConnectionRegistry.ts"
import { type ConnectionContext, ProtocolViolation } from "../ConnectionContext.ts"

/** Sends a refusing CONNACK; the caller closes the connection. */
const refuse = (context: ConnectionContext, returnCode: number, reason: string) => {
  context.outbox.send(Codec.encode({ cmd: "connack", returnCode, sessionPresent: false }, 4))
  return new ProtocolViolation({ reason })
}

/** The client id to use, or the reason it is refused (MQTT 3.1.1 §3.1.3.1, 3.1 §3.1). */
const clientIdFor = (context: ConnectionContext, packet: ConnectPacket): string | ProtocolViolation => {
  const id = packet.clientId
  const version = packet.protocolVersion ?? 4
  if (id.length === 0) {
    if (version === 3) return refuse(context, ConnackCode.IdentifierRejected, "empty client id (MQTT 3.1)")
    if (packet.clean === false) return refuse(context, ConnackCode.IdentifierRejected, "empty client id with clean=0")
    return `auto-${randomUUID()}`
  }
  if (version === 3 && id.length > 23) return refuse(context, ConnackCode.IdentifierRejected, "client id over 23 characters (MQTT 3.1)")
  if (id.length > context.core.config.maxClientIdLength || id.includes("\u0000")) {
    return refuse(context, ConnackCode.IdentifierRejected, "client id refused")
  }
  return id
}

const willOf = (packet: ConnectPacket): Message | undefined | ProtocolViolation => {
  const will = packet.will
  if (will === undefined || will === null) return undefined
  if (!isValidTopicName(will.topic)) return new ProtocolViolation({ reason: `invalid will topic ${JSON.stringify(will.topic)}` })
  return {
    topic: will.topic,
    payload: typeof will.payload === "string" ? Buffer.from(will.payload) : will.payload,
    qos: (will.qos ?? 0) as QoS,
    retain: will.retain ?? false
  }
}

/** Handles the first packet of a connection. */
export const handleConnect = Effect.fnUntraced(function*(
  context: ConnectionContext,
  packet: ConnectPacket,
  makeLive: (clientId: string) => LiveConnection
) {
  const version = packet.protocolVersion ?? 4
  if (version !== 3 && version !== 4) {
    return yield* refuse(context, ConnackCode.UnacceptableProtocolVersion, `unsupported protocol level ${version}`)
  }
  const clientId = clientIdFor(context, packet)
  if (clientId instanceof ProtocolViolation) return yield* clientId
  const will = willOf(packet)
  if (will instanceof ProtocolViolation) return yield* will

  const { core } = context
  const clean = packet.clean !== false
  context.clientId = clientId
  context.protocolVersion = version
  context.keepaliveMs = (packet.keepalive ?? 0) * 1000
  const live = makeLive(clientId)
  const request = {
    clientId,
    clean,
    // 3.1.1 has no expiry: a clean session ends with its connection, a persistent one never expires
    expiryInterval: clean ? 0 : EXPIRY_NEVER,
    receiveMaximum: core.config.maxInflightMessages,
    will
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
        if (core.registry.get(clientId) !== undefined) return Effect.succeed(false)
        return Effect.map(core.sessions.connect(request), (result) => {
          if (result.discarded !== undefined) {
            core.router.subscriptions.removeClient(clientId, result.discarded.subscriptions.keys())
          }
          core.registry.set(live)
          context.live = live
          context.phase = "connected"
          context.outbox.send(
            Codec.encode({ cmd: "connack", returnCode: ConnackCode.Accepted, sessionPresent: result.sessionPresent }, version)
          )
          live.send(result.outgoing)
          return true
        })
      })
    )
    if (connected) break
  }
  yield* Effect.logInfo("client connected").pipe(
    Effect.annotateLogs({ clientId, clean, protocolVersion: version, keepalive: packet.keepalive ?? 0 })
  )
})
