/**
 * One client connection as an Effect program: a reader loop that decodes packets and runs
 * each handler to completion, and a writer fiber draining the outbox; the broker's watchdog
 * enforces the connect timeout and keepalive. Whatever ends it (DISCONNECT, a lost socket, a
 * protocol violation, a takeover, shutdown), the teardown is the same: MQTT 5 clients get a
 * DISCONNECT saying why, the session transition for the end of a connection runs, the will is
 * published if due, the outbox is flushed and the socket closed.
 */
import { NodeSocket, NodeSocketServer } from "@effect/platform-node"
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Option, Predicate } from "effect"
import * as Socket from "effect/socket/Socket"
import * as Tls from "node:tls"
import type { Histogram } from "../observability/Histogram.ts"
import * as Codec from "../protocol/Codec.ts"
import type { DecodeError } from "../protocol/Codec.ts"
import { ConnackCode, type Packet } from "../protocol/Packet.ts"
import type { Message } from "../session/Message.ts"
import { nextDeadline } from "../session/SessionState.ts"
import type { SessionStoreError } from "../session/SessionStateProvider.ts"
import type { Outgoing } from "../session/Transitions.ts"
import type { LiveConnection } from "./ConnectionRegistry.ts"
import { type ConnectionContext, ProtocolViolation, ReasonCode } from "./ConnectionContext.ts"
import type { Core } from "./Core.ts"
import * as Delivery from "./Delivery.ts"
import * as FlowControl from "./FlowControl.ts"
import { handlePubcomp, handlePuback, handlePubrec } from "./handlers/acknowledge.ts"
import { handleConnect } from "./handlers/connect.ts"
import { handleDisconnect } from "./handlers/disconnect.ts"
import { handlePublish, handlePubrel } from "./handlers/publish.ts"
import { handleSubscribe } from "./handlers/subscribe.ts"
import { handleUnsubscribe } from "./handlers/unsubscribe.ts"
import * as Outbox from "./Outbox.ts"
import type { Watched } from "./Watchdog.ts"

/** Read through a function so TypeScript does not narrow the phase across a handler that changes it. */
const isClosing = (context: ConnectionContext): boolean => context.phase === "closing"

/** How long teardown waits for queued bytes to reach the socket before closing it anyway. */
const FLUSH_TIMEOUT_MS = 2000

/** Why decoding stopped, as a violation with its MQTT 5 reason code. */
const decodeViolation = (error: DecodeError): ProtocolViolation => {
  switch (error._tag) {
    case "TooLarge":
      return new ProtocolViolation({
        reason: `packet of ${error.size} bytes exceeds the maximum packet size ${error.limit}`,
        code: ReasonCode.PacketTooLarge
      })
    case "MalformedLength":
      return new ProtocolViolation({ reason: "malformed remaining length", code: ReasonCode.MalformedPacket })
    case "UnsupportedProtocolVersion":
      return new ProtocolViolation({ reason: "unsupported protocol level", disconnect: false })
    case "ProtocolError":
      return new ProtocolViolation({ reason: `protocol error: ${error.message}`, code: ReasonCode.ProtocolError })
    case "Malformed":
      return new ProtocolViolation({ reason: `malformed packet: ${error.message}`, code: ReasonCode.MalformedPacket })
  }
}

/**
 * The CONNACK that answers a CONNECT the broker could not accept as sent, if the spec names one:
 * return code 1 for a protocol level it does not speak [MQTT-3.1.2-2]; for a malformed MQTT 5
 * CONNECT, its reason code (MQTT 5 §4.13.1). Other bad first packets are only closed.
 */
const refusalFor = (error: DecodeError): Buffer | undefined => {
  if (error._tag === "UnsupportedProtocolVersion") {
    return Codec.encode({ cmd: "connack", returnCode: ConnackCode.UnacceptableProtocolVersion, sessionPresent: false }, 4)
  }
  if ((error._tag === "Malformed" || error._tag === "ProtocolError") && error.connectVersion === 5) {
    const reasonCode = error._tag === "Malformed" ? ReasonCode.MalformedPacket : ReasonCode.ProtocolError
    return Codec.encode({ cmd: "connack", reasonCode, sessionPresent: false }, 5)
  }
  return undefined
}

/** Runs `effect` and records how long it took (seconds), however it ended. */
const timed = <A, E>(effect: Effect.Effect<A, E>, histogram: Histogram): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    const started = performance.now()
    return Effect.ensuring(effect, Effect.sync(() => histogram.observe((performance.now() - started) / 1000)))
  })

/** Runs one packet's handler. */
const dispatch = (
  context: ConnectionContext,
  packet: Packet,
  makeLive: Parameters<typeof handleConnect>[2]
): Effect.Effect<void, ProtocolViolation | SessionStoreError> => {
  if (context.phase === "awaiting-connect") {
    return packet.cmd === "connect"
      ? timed(handleConnect(context, packet, makeLive), context.core.stats.connectDuration)
      : Effect.fail(new ProtocolViolation({ reason: `first packet was ${packet.cmd.toUpperCase()}, not CONNECT`, disconnect: false }))
  }
  switch (packet.cmd) {
    case "publish":
      return handlePublish(context, packet)
    case "puback":
      return handlePuback(context, packet.messageId)
    case "pubrec":
      return handlePubrec(context, packet.messageId)
    case "pubrel":
      return handlePubrel(context, packet)
    case "pubcomp":
      return handlePubcomp(context, packet.messageId)
    case "subscribe":
      return handleSubscribe(context, packet)
    case "unsubscribe":
      return handleUnsubscribe(context, packet)
    case "pingreq":
      return Effect.sync(() => context.outbox.send(Codec.PINGRESP))
    case "disconnect":
      return handleDisconnect(context, packet)
    case "connect":
      return Effect.fail(new ProtocolViolation({ reason: "second CONNECT on one connection" }))
    default:
      return Effect.fail(new ProtocolViolation({ reason: `unexpected ${packet.cmd.toUpperCase()} from a client` }))
  }
}

/**
 * The broker's topic aliases towards one MQTT 5 client (connection-local, as the spec says):
 * the first PUBLISH on a topic carries the topic and a new alias, later ones only the alias.
 */
const makeAliases = (maximum: number) => {
  const aliases = new Map<string, number>()
  return (topic: string): Codec.PublishOptions | undefined => {
    if (maximum === 0) return undefined
    const known = aliases.get(topic)
    if (known !== undefined) return { topicAlias: known, aliasOnly: true }
    if (aliases.size >= maximum) return undefined
    const alias = aliases.size + 1
    aliases.set(topic, alias)
    return { topicAlias: alias }
  }
}

/**
 * The subject CN of the client certificate the handshake verified; undefined when there is none.
 * An unverified certificate (the listener did not require one) names nobody.
 */
const commonNameOf = (socket: Tls.TLSSocket): string | undefined => {
  if (!socket.authorized) return undefined
  const cn: unknown = socket.getPeerCertificate().subject?.CN
  // a subject with several CNs comes back as an array: the first one names the client
  const first = Array.isArray(cn) ? cn[0] : cn
  return typeof first === "string" && first !== "" ? first : undefined
}

/**
 * Whether connections from `address` are refused unread: it failed authentication more often
 * than `maxAuthFailuresPerSecond` allows (one warning a second per address).
 */
const shutOut = (core: Core, address: string | undefined): Effect.Effect<boolean> =>
  core.authFailures === undefined || address === undefined
    ? Effect.succeed(false)
    : Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const verdict = core.authFailures!.check(address, now)
      if (verdict.allowed) return Effect.succeed(false)
      return verdict.report === undefined ? Effect.succeed(true) : Effect.as(
        Effect.logWarning(
          `closing connections from ${address} unread: over --max-auth-failure-rate ${core.config.maxAuthFailuresPerSecond} failed authentications a second (${verdict.report} closed since the last such line)`
        ),
        true
      )
    })

/** Serves one accepted socket until it closes. */
export const serve = (core: Core) => (socket: Socket.Socket): Effect.Effect<void> =>
  Effect.scoped(
    Effect.gen(function*() {
      const net = yield* Effect.serviceOption(NodeSocket.NetSocket)
      // the TCP peer: the socket itself, or for a WebSocket its upgrade request's (a reverse proxy's, behind one)
      const peer = Option.isSome(net)
        ? net.value
        : Option.getOrUndefined(yield* Effect.serviceOption(NodeSocketServer.IncomingMessage))?.socket
      let remote = "websocket"
      let certificate: ConnectionContext["certificate"] = undefined
      if (peer !== undefined) {
        // gone before it was served (no address any more), or from an address guessing passwords:
        // closed before this connection costs anything more
        if (peer.remoteAddress === undefined || (yield* shutOut(core, peer.remoteAddress))) return peer.destroy()
        remote = `${peer.remoteAddress}:${peer.remotePort}`
      }
      if (Option.isSome(net)) {
        net.value.setNoDelay(true)
        // the TLS listener hands over the socket once its handshake has completed
        if (net.value instanceof Tls.TLSSocket) certificate = { commonName: commonNameOf(net.value) }
      }
      const { stats } = core
      stats.socketsAccepted++
      const pull = yield* Socket.readerBytes(socket)
      const outbox = Outbox.make(yield* socket.writer, core.config.maxOutboxBytes, stats)
      const writerFiber = yield* Effect.forkScoped(Effect.exit(outbox.run))
      const ended = Deferred.makeUnsafe<void>()
      // closing from outside (takeover, keepalive, connect timeout) interrupts the read loop
      let closeRequested = false
      let reading: Fiber.Fiber<void, unknown> | undefined
      const requestClose = (code: number) => {
        context.closeCode ??= code
        closeRequested = true
        reading?.interruptUnsafe()
      }
      const acceptedAt = Date.now()
      let lastActivity = acceptedAt

      const context: ConnectionContext = {
        core,
        outbox,
        remote,
        certificate,
        phase: "awaiting-connect",
        clientId: "",
        username: undefined,
        protocolVersion: 4,
        keepaliveMs: 0,
        graceful: false,
        live: undefined,
        releaseSeat: undefined,
        problemInformation: true,
        inboundAliases: new Map(),
        connectExpiry: 0,
        disconnectExpiry: undefined,
        closeCode: undefined
      }
      const makeLive = (clientId: string, topicAliasMaximum: number, maximumPacketSize: number | undefined): LiveConnection => {
        const version = context.protocolVersion
        const aliasFor = makeAliases(topicAliasMaximum)
        const options = (message: Message): Codec.PublishOptions | undefined => {
          if (version !== 5) return undefined
          const alias = aliasFor(message.topic)
          return message.expiresAt === undefined ? alias : { ...alias, now: Date.now() }
        }
        return {
          clientId,
          // read when asked: the Authenticator may settle the user name after this is built
          get username() {
            return context.username
          },
          send: (outgoing: ReadonlyArray<Outgoing>) => {
            for (const out of outgoing) {
              if (out._tag === "Publish") stats.countPublishSent(out.message.payload.length)
              outbox.send(Codec.encodeOutgoing(out, version, out._tag === "Publish" ? options(out.message) : undefined))
            }
          },
          // QoS 0 goes straight to the outbox; a congested one holds the publisher back (FlowControl)
          sendQos0: FlowControl.qos0Sender(core.config, core.registry.flow, outbox, {
            clientId,
            protocolVersion: version,
            maximumPacketSize,
            // called once per message actually sent
            encode: (message) => {
              stats.countPublishSent(message.payload.length)
              return Codec.encodePublish(message, undefined, false, version, options(message))
            }
          }),
          outboxBytes: outbox.pendingBytes,
          takeOver: Effect.suspend(() => {
            requestClose(ReasonCode.SessionTakenOver)
            return Deferred.await(ended)
          })
        }
      }

      // Connect timeout, then keepalive: 1.5 × the keepalive with no packet closes it.
      const watched: Watched = {
        deadline: () =>
          context.phase === "awaiting-connect"
            ? acceptedAt + core.config.connectTimeoutMs
            : context.phase === "connected" && context.keepaliveMs > 0
            ? lastActivity + context.keepaliveMs * 1.5
            : Infinity,
        expire: Effect.suspend(() => {
          const connecting = context.phase === "awaiting-connect"
          requestClose(ReasonCode.KeepAliveTimeout)
          return Effect.logWarning(`closing connection: ${connecting ? "no CONNECT within the connect timeout" : "keepalive expired"}`).pipe(
            Effect.annotateLogs({ remote, clientId: context.clientId, protocolVersion: context.protocolVersion, reasonCode: ReasonCode.KeepAliveTimeout })
          )
        })
      }
      core.watchdog.add(watched)

      const decoder = Codec.makeDecoder(core.config.maxPacketSize, core.receiving)
      const paced = core.pacer.reader()
      const readLoop = Effect.gen(function*() {
        while (context.phase !== "closing") {
          const chunks = yield* pull
          lastActivity = Date.now()
          for (const chunk of chunks) {
            stats.bytesReceived += chunk.length
            let decoded = decoder.decode(chunk)
            while (true) {
              stats.packetsReceived += decoded.packets.length
              for (const packet of decoded.packets) {
                // a handler runs to completion: a close request waits for it, so no packet is half-handled
                yield* Effect.uninterruptible(dispatch(context, packet, makeLive))
                if (isClosing(context)) return
                // a delivery found a subscriber congested: read no more from this socket until it drains
                if (core.registry.flow.held.size !== 0) yield* core.registry.flow.awaitRelease(context.clientId)
              }
              const error = decoded.error
              if (error !== undefined) {
                const refusal = context.phase === "awaiting-connect" ? refusalFor(error) : undefined
                if (refusal !== undefined) outbox.send(refusal)
                return yield* decodeViolation(error)
              }
              // a large packet waits for room among all partly received ones: this socket is not read meanwhile
              const waitingFor = decoder.waitingFor()
              if (waitingFor === 0) {
                // a large upload reads on within the byte rate the event loop's lag allows (UploadPacer)
                if (decoder.receivingLarge()) yield* paced.pace(chunk.length)
                break
              }
              yield* core.receiving.take(waitingFor, decoder.adopt)
              decoded = Codec.resume(decoder)
            }
          }
        }
      })

      /** MQTT 5: tell the client why the broker is closing the connection. */
      const sendDisconnect = (code: number, reason: string | undefined) => {
        if (context.protocolVersion !== 5 || context.phase === "awaiting-connect" || context.graceful) return
        const reasonString = reason !== undefined && context.problemInformation ? { properties: { reasonString: reason } } : {}
        outbox.send(Codec.encode({ cmd: "disconnect", reasonCode: code, ...reasonString }, 5))
      }

      const teardown = Effect.gen(function*() {
        const live = context.live
        // the broker is stopping when nothing inside asked for the close
        if (!closeRequested && context.closeCode === undefined && !context.graceful && context.phase === "connected") {
          context.closeCode = ReasonCode.ServerShuttingDown
        }
        if (context.closeCode !== undefined) sendDisconnect(context.closeCode, undefined)
        context.phase = "closing"
        context.releaseSeat?.()
        core.watchdog.delete(watched)
        if (live !== undefined) {
          const now = yield* Clock.currentTimeMillis
          const will = yield* core.locks.withLock(
            context.clientId,
            Effect.gen(function*() {
              if (!core.registry.delete(live)) return undefined
              const stored = yield* core.sessions.get(context.clientId)
              const end = yield* core.sessions.disconnect(
                context.clientId,
                { graceful: context.graceful, expiryInterval: context.disconnectExpiry },
                now
              )
              if (end.state === undefined) {
                if (Option.isSome(stored)) core.router.subscriptions.removeClient(context.clientId, stored.value.subscriptions.keys())
                // no session left to queue for: nothing to authorize as this user any more
                core.registry.forgetUsername(context.clientId)
              } else {
                core.expiry.schedule(context.clientId, nextDeadline(end.state))
              }
              return end.will
            })
          )
          if (will !== undefined) yield* Delivery.publish(core, will, context.clientId)
          yield* Effect.logInfo(context.graceful ? "client disconnected" : "connection lost").pipe(
            Effect.annotateLogs({ clientId: context.clientId, protocolVersion: context.protocolVersion, reasonCode: context.closeCode ?? ReasonCode.Success })
          )
        }
      }).pipe(
        Effect.catchCause((cause) => Effect.logError("session teardown failed", cause)),
        Effect.ensuring(Effect.suspend(() => {
          decoder.dispose()
          outbox.close()
          return Fiber.join(writerFiber).pipe(Effect.timeoutOption(FLUSH_TIMEOUT_MS), Effect.asVoid)
        })),
        Effect.ensuring(Deferred.done(ended, Exit.void))
      )

      // the read loop's own fiber: the annotation below reaches only what runs in this one
      const readLoopFiber = yield* Effect.forkChild(readLoop.pipe(Effect.annotateLogs({ remote })), { startImmediately: true })
      reading = readLoopFiber
      if (closeRequested) readLoopFiber.interruptUnsafe()
      yield* Fiber.join(readLoopFiber).pipe(
        Effect.catchCause((cause) => {
          if (Cause.hasInterruptsOnly(cause)) return Effect.void
          if (Cause.hasFails(cause)) return Effect.failCause(cause)
          // a defect in a handler is a bug of ours: it ends this connection only, with a line saying so
          sendDisconnect(ReasonCode.ImplementationSpecificError, undefined)
          context.phase = "closing"
          return Effect.logError("connection ended by an internal error", cause)
        }),
        Effect.catch((error) => {
          if (Predicate.isTagged(error, "ProtocolViolation")) {
            if (error.disconnect !== false) sendDisconnect(error.code ?? ReasonCode.ProtocolError, error.reason)
            context.phase = "closing"
            return (error.quiet === true ? Effect.logDebug : Effect.logWarning)(`closing connection: ${error.reason}`).pipe(
              Effect.annotateLogs({ clientId: context.clientId, protocolVersion: context.protocolVersion, reasonCode: error.code ?? ReasonCode.ProtocolError })
            )
          }
          if (Predicate.isTagged(error, "SocketError")) {
            context.phase = "closing"
            return Effect.logDebug("socket closed")
          }
          sendDisconnect(ReasonCode.ImplementationSpecificError, undefined)
          context.phase = "closing"
          return Effect.logError("session store failed; closing connection", error)
        }),
        Effect.ensuring(teardown),
        Effect.annotateLogs({ remote })
      )
    })
  ).pipe(Effect.catch((error) => Effect.logDebug("socket failed before it was read", error)))
