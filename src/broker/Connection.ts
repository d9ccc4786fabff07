/**
 * One client connection as an Effect program: a reader loop that decodes packets and runs
 * each handler to completion, a writer fiber draining the outbox, and watchdogs for the
 * connect timeout and keepalive. Whatever ends it (DISCONNECT, a lost socket, a protocol
 * violation, a takeover, shutdown), the teardown is the same: the session transition for
 * the end of a connection, the will if due, the outbox flushed, the socket closed.
 */
import { NodeSocket } from "@effect/platform-node"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Predicate } from "effect"
import * as Socket from "effect/socket/Socket"
import * as Codec from "../protocol/Codec.ts"
import type { DecodeError } from "../protocol/Codec.ts"
import { ConnackCode, type Packet } from "../protocol/Packet.ts"
import type { Message } from "../session/Message.ts"
import type { SessionStoreError } from "../session/SessionStateProvider.ts"
import type { Outgoing } from "../session/Transitions.ts"
import type { LiveConnection } from "./ConnectionRegistry.ts"
import { type ConnectionContext, ProtocolViolation } from "./ConnectionContext.ts"

/** Read through a function so TypeScript does not narrow the phase across a handler that changes it. */
const isClosing = (context: ConnectionContext): boolean => context.phase === "closing"
import type { Core } from "./Core.ts"
import * as Delivery from "./Delivery.ts"
import { handlePubcomp, handlePuback, handlePubrec } from "./handlers/acknowledge.ts"
import { handleConnect } from "./handlers/connect.ts"
import { handlePublish, handlePubrel } from "./handlers/publish.ts"
import { handleSubscribe } from "./handlers/subscribe.ts"
import { handleUnsubscribe } from "./handlers/unsubscribe.ts"
import * as Outbox from "./Outbox.ts"
import type { Watched } from "./Watchdog.ts"

/** How long teardown waits for queued bytes to reach the socket before closing it anyway. */
const FLUSH_TIMEOUT_MS = 2000

const describeDecodeError = (error: DecodeError): string =>
  error._tag === "TooLarge"
    ? `packet of ${error.size} bytes exceeds the maximum packet size ${error.limit}`
    : error._tag === "MalformedLength"
    ? "malformed remaining length"
    : error._tag === "UnsupportedProtocolVersion"
    ? "unsupported protocol level"
    : `malformed packet: ${error.message}`

/** Runs one packet's handler. */
const dispatch = (
  context: ConnectionContext,
  packet: Packet,
  makeLive: (clientId: string) => LiveConnection
): Effect.Effect<void, ProtocolViolation | SessionStoreError> => {
  if (context.phase === "awaiting-connect") {
    return packet.cmd === "connect"
      ? handleConnect(context, packet, makeLive)
      : Effect.fail(new ProtocolViolation({ reason: `first packet was ${packet.cmd.toUpperCase()}, not CONNECT` }))
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
      return Effect.sync(() => {
        context.graceful = true
        context.phase = "closing"
      })
    case "connect":
      return Effect.fail(new ProtocolViolation({ reason: "second CONNECT on one connection" }))
    default:
      return Effect.fail(new ProtocolViolation({ reason: `unexpected ${packet.cmd.toUpperCase()} from a client` }))
  }
}

/** Serves one accepted socket until it closes. */
export const serve = (core: Core) => (socket: Socket.Socket): Effect.Effect<void> =>
  Effect.scoped(
    Effect.gen(function*() {
      const net = yield* Effect.serviceOption(NodeSocket.NetSocket)
      let remote = "websocket"
      if (Option.isSome(net)) {
        net.value.setNoDelay(true)
        remote = `${net.value.remoteAddress}:${net.value.remotePort}`
      }
      const pull = yield* Socket.readerBytes(socket)
      const outbox = Outbox.make(yield* socket.writer, core.config.maxOutboxBytes)
      const writerFiber = yield* Effect.forkScoped(Effect.exit(outbox.run))
      const ended = Deferred.makeUnsafe<void>()
      // closing from outside (takeover, keepalive, connect timeout) interrupts the read loop
      let closeRequested = false
      let reading: Fiber.Fiber<void, unknown> | undefined
      const requestClose = () => {
        closeRequested = true
        reading?.interruptUnsafe()
      }
      const acceptedAt = Date.now()
      let lastActivity = acceptedAt

      const context: ConnectionContext = {
        core,
        outbox,
        remote,
        phase: "awaiting-connect",
        clientId: "",
        protocolVersion: 4,
        keepaliveMs: 0,
        graceful: false,
        live: undefined
      }
      const makeLive = (clientId: string): LiveConnection => ({
        clientId,
        send: (outgoing: ReadonlyArray<Outgoing>) => {
          for (const out of outgoing) outbox.send(Codec.encodeOutgoing(out))
        },
        sendQos0: (message: Message) => {
          outbox.sendDroppable(Codec.encodePublish(message, undefined, false))
        },
        takeOver: Effect.suspend(() => {
          requestClose()
          return Deferred.await(ended)
        })
      })

      // Connect timeout, then keepalive: 1.5 × the client's keepalive with no packet closes it.
      const watched: Watched = {
        deadline: () =>
          context.phase === "awaiting-connect"
            ? acceptedAt + core.config.connectTimeoutMs
            : context.phase === "connected" && context.keepaliveMs > 0
            ? lastActivity + context.keepaliveMs * 1.5
            : Infinity,
        expire: Effect.suspend(() => {
          const reason = context.phase === "awaiting-connect" ? "no CONNECT within the connect timeout" : "keepalive expired"
          requestClose()
          return Effect.logWarning(`closing connection: ${reason}`).pipe(
            Effect.annotateLogs({ remote, clientId: context.clientId })
          )
        })
      }
      core.watchdog.add(watched)

      const decoder = Codec.makeDecoder(core.config.maxPacketSize)
      const readLoop = Effect.gen(function*() {
        while (context.phase !== "closing") {
          const chunks = yield* pull
          lastActivity = Date.now()
          for (const chunk of chunks) {
            const { error, packets } = decoder.decode(chunk)
            for (const packet of packets) {
              // a handler runs to completion: a close request waits for it, so no packet is half-handled
              yield* Effect.uninterruptible(dispatch(context, packet, makeLive))
              if (isClosing(context)) return
            }
            if (error !== undefined) {
              if (error._tag === "UnsupportedProtocolVersion" && context.phase === "awaiting-connect") {
                outbox.send(Codec.encode({ cmd: "connack", returnCode: ConnackCode.UnacceptableProtocolVersion, sessionPresent: false }, 4))
              }
              return yield* new ProtocolViolation({ reason: describeDecodeError(error) })
            }
          }
        }
      })

      const teardown = Effect.gen(function*() {
        const live = context.live
        context.phase = "closing"
        core.watchdog.delete(watched)
        if (live !== undefined) {
          const will = yield* core.locks.withLock(
            context.clientId,
            Effect.gen(function*() {
              if (!core.registry.delete(live)) return undefined
              const stored = yield* core.sessions.get(context.clientId)
              const end = yield* core.sessions.disconnect(context.clientId, context.graceful, Date.now())
              if (end.state === undefined && Option.isSome(stored)) {
                core.router.subscriptions.removeClient(context.clientId, stored.value.subscriptions.keys())
              }
              return end.will
            })
          )
          if (will !== undefined) yield* Delivery.publish(core, will)
          yield* Effect.logInfo(context.graceful ? "client disconnected" : "connection lost").pipe(
            Effect.annotateLogs({ clientId: context.clientId })
          )
        }
      }).pipe(
        Effect.catchCause((cause) => Effect.logError("session teardown failed", cause)),
        Effect.ensuring(Effect.suspend(() => {
          outbox.close()
          return Fiber.join(writerFiber).pipe(Effect.timeoutOption(FLUSH_TIMEOUT_MS), Effect.asVoid)
        })),
        Effect.ensuring(Deferred.done(ended, Exit.void))
      )

      const readLoopFiber = yield* Effect.forkChild(readLoop, { startImmediately: true })
      reading = readLoopFiber
      if (closeRequested) readLoopFiber.interruptUnsafe()
      yield* Fiber.join(readLoopFiber).pipe(
        Effect.catchCause((cause) => (Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.failCause(cause))),
        Effect.catch((error) =>
          Predicate.isTagged(error, "ProtocolViolation")
            ? Effect.logWarning(`closing connection: ${error.reason}`)
            : Predicate.isTagged(error, "SocketError")
            ? Effect.logDebug("socket closed")
            : Effect.logError("session store failed; closing connection", error)
        ),
        Effect.ensuring(teardown),
        Effect.annotateLogs({ remote })
      )
    })
  ).pipe(Effect.catch((error) => Effect.logDebug("socket failed before it was read", error)))
