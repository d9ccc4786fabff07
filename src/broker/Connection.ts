/**
 * One client connection as a thin Effect program around the `ConnectionPhase` state machine: a
 * reader that decodes packets and runs each handler to completion, and an outbox that writes
 * what they queue in batches; the broker's watchdog enforces the connect timeout and keepalive. Whatever ends
 * the connection becomes one `CloseReason` (client DISCONNECT, protocol violation, refused
 * CONNECT, takeover, keepalive, shutdown, I/O error, a bug), and the teardown is the same for
 * every reason: a live MQTT 5 client gets a DISCONNECT saying why, the session transition for
 * the end of a connection runs, the will is published if due, the outbox is flushed and the
 * socket closed.
 */
import { Clock, Deferred, Effect, Exit, Fiber, Option } from "effect"
import type { Histogram } from "../observability/Histogram.ts"
import * as Codec from "../protocol/Codec.ts"
import { DecodeError, type DecodeErrorReason, reasonCodeOf } from "../protocol/DecodeError.ts"
import type { Packet } from "../protocol/Packet.ts"
import { ConnackCode } from "../protocol/ReasonCode.ts"
import { nextDeadline } from "../session/SessionState.ts"
import type { Wire } from "../transport/Wire.ts"
import * as CloseReason from "./CloseReason.ts"
import * as ConnectionContext from "./ConnectionContext.ts"
import * as ConnectionPhase from "./ConnectionPhase.ts"
import type { LiveConnection as Live } from "./ConnectionRegistry.ts"
import type { Core } from "./Core.ts"
import * as Delivery from "./Delivery.ts"
import { handlePubcomp, handlePuback, handlePubrec } from "./handlers/acknowledge.ts"
import { type ConnectBinding, handleConnect } from "./handlers/connect.ts"
import { handleDisconnect } from "./handlers/disconnect.ts"
import { handlePublish, handlePubrel } from "./handlers/publish.ts"
import { handleSubscribe } from "./handlers/subscribe.ts"
import { handleUnsubscribe } from "./handlers/unsubscribe.ts"
import * as LiveConnection from "./LiveConnection.ts"
import * as Outbox from "./Outbox.ts"
import * as Peer from "./Peer.ts"
import { ProtocolViolation } from "./ProtocolViolation.ts"
import type { Watched } from "./Watchdog.ts"

/** How long teardown waits for queued bytes to reach the socket before closing it anyway. */
const FLUSH_TIMEOUT_MS = 2000

/**
 * The CONNACK that answers a CONNECT the broker could not decode, if the spec names one:
 * return code 1 for a protocol level it does not speak [MQTT-3.1.2-2]; for a malformed MQTT 5
 * CONNECT, its reason code (MQTT 5 §4.13.1). Other bad first packets are only closed.
 */
const refusalFor = (error: DecodeErrorReason): Buffer | undefined => {
  if (error._tag === "UnsupportedProtocolVersion") {
    return Codec.encode({ cmd: "connack", returnCode: ConnackCode.UnacceptableProtocolVersion, sessionPresent: false }, 4)
  }
  if ((error._tag === "Malformed" || error._tag === "ProtocolError") && error.connectVersion === 5) {
    return Codec.encode({ cmd: "connack", reasonCode: reasonCodeOf(error), sessionPresent: false }, 5)
  }
  return undefined
}

/** Runs `effect` and records how long it took (seconds), however it ended. */
const timed = <A, E>(effect: Effect.Effect<A, E>, histogram: Histogram): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    const started = performance.now()
    return Effect.ensuring(effect, Effect.sync(() => histogram.observe((performance.now() - started) / 1000)))
  })

/** Runs the handler of one packet after CONNECT; DISCONNECT answers with the reason the connection ends. */
const dispatch = (
  context: ConnectionContext.ConnectionContext,
  packet: Packet
): Effect.Effect<CloseReason.CloseReason | void, CloseReason.ReaderError> => {
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

/** Serves one accepted connection until it closes. */
export const serve = (core: Core) => (wire: Wire): Effect.Effect<void> => {
  const peer = Peer.identify(core, wire)
  if (peer === undefined) {
    wire.close()
    return Effect.void
  }
  const { remote } = peer
  // one annotation for every log line of this connection, its writer and monitor included
  return Effect.scoped(
    Effect.gen(function*() {
      const { stats } = core
      stats.socketsAccepted++
      // every time this connection reads (connect timeout, keepalive, message expiry) comes from Effect's Clock
      const clock = yield* Clock.Clock
      const pull = wire.pull
      const outbox = Outbox.make(wire.writer, core.config.maxOutboxBytes, stats)
      yield* outbox.start
      const context = ConnectionContext.make(core, outbox, remote, peer.certificate)
      const ended = Deferred.makeUnsafe<void>()
      const acceptedAt = clock.currentTimeMillisUnsafe()
      let lastActivity = acceptedAt

      // the state machine: `step` feeds it an event and performs what it asks
      let phase = ConnectionPhase.awaitingConnect as ConnectionPhase.Phase
      let reading: Fiber.Fiber<unknown, unknown> | undefined
      const step = (event: ConnectionPhase.Event): void => {
        const next = ConnectionPhase.transition(phase, event)
        phase = next.phase
        for (const action of next.actions) {
          if (action._tag === "StopReading") {
            // a handler runs to completion: the interruption waits for it, so no packet is half-handled
            reading?.interruptUnsafe()
          } else {
            const properties = action.reasonString === undefined ? {} : { properties: { reasonString: action.reasonString } }
            outbox.send(Codec.encode({ cmd: "disconnect", reasonCode: action.code, ...properties }, 5))
          }
        }
      }

      const takeOver = Effect.suspend(() => {
        step({ _tag: "CloseRequested", reason: CloseReason.TakenOver })
        return Deferred.await(ended)
      })
      const binding: ConnectBinding = {
        makeLive: (clientId, topicAliasMaximum, maximumPacketSize) =>
          LiveConnection.make({
            core,
            outbox,
            clock,
            clientId,
            version: context.protocol.version,
            session: context.session,
            topicAliasMaximum,
            maximumPacketSize,
            takeOver
          }),
        accepted: (problemInformation) =>
          step({ _tag: "ConnectAccepted", v5: context.protocol.version === 5, problemInformation })
      }

      const watched: Watched = {
        deadline: () =>
          ConnectionPhase.deadline(phase, acceptedAt, core.config.connectTimeoutMs, lastActivity, context.protocol.keepaliveMs),
        expire: Effect.sync(() => step({ _tag: "CloseRequested", reason: ConnectionPhase.expiryReason(phase) }))
      }
      core.watchdog.add(watched)

      /** The first packet: only CONNECT is accepted. */
      const first = (packet: Packet): Effect.Effect<void, CloseReason.ReaderError> => {
        if (packet.cmd !== "connect") {
          return Effect.fail(new ProtocolViolation({ reason: `first packet was ${packet.cmd.toUpperCase()}, not CONNECT` }))
        }
        step(ConnectionPhase.connectReceived)
        return timed(handleConnect(context, packet, binding), stats.connectDuration)
      }

      const decoder = Codec.makeDecoder(core.config.maxPacketSize, core.receiving)
      const paced = core.pacer.reader()
      /** Reads until a packet ends the connection (its reason is the result) or reading fails. */
      const readLoop = Effect.gen(function*() {
        while (true) {
          const chunks = yield* pull
          lastActivity = clock.currentTimeMillisUnsafe()
          for (const chunk of chunks) {
            stats.bytesReceived += chunk.length
            let decoded = decoder.decode(chunk)
            while (true) {
              stats.packetsReceived += decoded.packets.length
              for (const packet of decoded.packets) {
                const closed = yield* Effect.uninterruptible(
                  phase._tag === "AwaitingConnect" ? first(packet) : dispatch(context, packet)
                )
                if (closed !== undefined) return closed
                // closed from outside while the handler ran: the packets after it are not handled
                if (phase._tag === "Closing") return phase.reason
                // a delivery found a subscriber congested: read no more from this socket until it drains
                if (core.registry.flow.held.size !== 0) yield* core.registry.flow.awaitRelease(context.session.clientId)
              }
              const error = decoded.error
              if (error !== undefined) {
                const refusal = phase._tag === "AwaitingConnect" ? refusalFor(error) : undefined
                if (refusal !== undefined) outbox.send(refusal)
                return yield* new DecodeError({ reason: error })
              }
              // a large packet waits for room among all partly received ones: this socket is not read meanwhile
              const waitingFor = decoder.waitingFor()
              if (waitingFor === 0) {
                // a large upload reads on within the byte rate the event loop's lag allows (UploadPacer)
                if (decoder.receivingLarge()) yield* paced.pace(chunk.length)
                break
              }
              yield* core.receiving.take(waitingFor, (bytes) => decoder.adopt(bytes))
              decoded = Codec.resume(decoder)
            }
          }
        }
      })

      /** The end of the session side: the session transition, the will, the log line. */
      const endSession = (reason: CloseReason.CloseReason, live: Live) =>
        Effect.gen(function*() {
          const { clientId } = context.session
          const graceful = CloseReason.isGraceful(reason)
          const expiryInterval = reason._tag === "ClientDisconnect" ? reason.expiryInterval : undefined
          const now = yield* Clock.currentTimeMillis
          const will = yield* core.locks.withLock(
            clientId,
            Effect.gen(function*() {
              if (!core.registry.delete(live)) return undefined
              const stored = yield* core.sessions.get(clientId)
              const end = yield* core.sessions.disconnect(clientId, { graceful, expiryInterval }, now)
              if (end.state === undefined) {
                if (Option.isSome(stored)) core.router.subscriptions.removeClient(clientId, stored.value.subscriptions.keys())
                // no session left to queue for: nothing to authorize as this user any more
                core.registry.forgetUsername(clientId)
                // and nothing for this node of a cluster to hold on to
                if (core.cluster !== undefined) yield* core.cluster.release(clientId)
              } else {
                core.expiry.schedule(clientId, nextDeadline(end.state))
              }
              return end.will
            })
          )
          if (will !== undefined) yield* Delivery.publish(core, will, clientId)
          yield* Effect.logInfo(graceful ? "client disconnected" : "connection lost")
        })

      /** The one way out, whatever the reason. */
      const teardown = (stoppedFor: CloseReason.CloseReason) =>
        Effect.gen(function*() {
          step({ _tag: "ReaderStopped", reason: stoppedFor })
          const reason = phase._tag === "Closing" ? phase.reason : stoppedFor
          const annotations = {
            clientId: context.session.clientId,
            protocolVersion: context.protocol.version,
            reasonCode: CloseReason.logCode(reason)
          }
          const line = CloseReason.closeLine(reason)
          if (line !== undefined) {
            const log = Effect.logWithLevel(line.level)
            yield* (line.cause === undefined ? log(line.message) : log(line.message, line.cause)).pipe(Effect.annotateLogs(annotations))
          }
          context.session.releaseSeat?.()
          core.watchdog.delete(watched)
          const live = context.session.live
          if (live !== undefined) yield* endSession(reason, live).pipe(Effect.annotateLogs(annotations))
        }).pipe(
          Effect.catchCause((cause) => Effect.logError("session teardown failed", cause)),
          Effect.ensuring(Effect.suspend(() => {
            decoder.dispose()
            outbox.close()
            return outbox.finished.pipe(Effect.timeoutOption(FLUSH_TIMEOUT_MS), Effect.asVoid)
          })),
          Effect.ensuring(Deferred.done(ended, Exit.void))
        )

      // the reader runs in this fiber, the only part of it that can be interrupted: `step` stops
      // it by interrupting this fiber (a handler runs to completion first), and so does the
      // broker stopping (then the reader has no reason of its own); the teardown always runs
      yield* Effect.uninterruptibleMask((restore) =>
        Effect.withFiber((fiber) => {
          reading = fiber
          // closed (a takeover, a timer) before the reader started
          if (phase._tag === "Closing") fiber.interruptUnsafe()
          return Effect.flatMap(Effect.exit(restore(readLoop)), (exit) => teardown(CloseReason.ofExit(exit)))
        })
      )
    })
  ).pipe(Effect.annotateLogs({ remote }), Effect.ensuring(Effect.sync(() => wire.close())))
}
