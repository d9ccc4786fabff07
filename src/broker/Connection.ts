/**
 * One client connection around the `ConnectionPhase` state machine: a reader that decodes packets
 * and runs each handler to completion, and an outbox that writes what they queue in batches; the
 * broker's watchdog enforces the connect timeout and keepalive.
 *
 * Most connections are idle most of the time (issue 16: memory per idle connection), so an idle
 * one is a plain object and no fiber: when bytes arrive, the wire tells the connection, which
 * starts a fiber for the burst; the fiber decodes and handles what is there (waiting, when it
 * must, for a congested subscriber or the receive budget), waits for more, and ends once the wire
 * has had nothing to read for a couple of watchdog ticks. A close from outside (takeover, keepalive, shutdown) interrupts that fiber if there is
 * one (a handler runs to completion first), or starts one for the teardown. Whatever ends
 * the connection becomes one `CloseReason` (client DISCONNECT, protocol violation, refused
 * CONNECT, takeover, keepalive, shutdown, I/O error, a bug), and the teardown is the same for
 * every reason: a live MQTT 5 client gets a DISCONNECT saying why, the session transition for
 * the end of a connection runs, the will is published if due, the outbox is flushed and the
 * socket closed.
 */
import { Clock, Context, Effect, Exit, type Fiber, Option } from "effect"
import type { Histogram } from "../observability/Histogram.ts"
import * as Codec from "../protocol/Codec.ts"
import { DecodeError, type DecodeErrorReason, reasonCodeOf } from "../protocol/DecodeError.ts"
import type { Packet } from "../protocol/Packet.ts"
import { ConnackCode } from "../protocol/ReasonCode.ts"
import { nextDeadline } from "../session/SessionState.ts"
import type { Handler, Served, Tracker } from "../transport/Listener.ts"
import { isChunks, type Readable, type Wire } from "../transport/Wire.ts"
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
import type { PacedReader } from "./UploadPacer.ts"
import { ProtocolViolation } from "./ProtocolViolation.ts"
import type { Watched } from "./Watchdog.ts"
import type { Decoder } from "../protocol/Decoder.ts"

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

/** What a burst's reader returns when the wire has nothing more to read: the connection goes idle. */
const IDLE = Symbol("idle")

/**
 * Watchdog ticks (250 ms apart) the reader of a busy connection waits for bytes before it ends:
 * it keeps its fiber between packets (one per packet would cost a fiber's start each time). A
 * connection is busy when bytes come again within a tick of its last burst; a client that only
 * connected is not, and its reader ends at once (a waiting fiber per connection during a connect
 * flood survives collections, and makes V8 grow its young generation for good).
 */
const LINGER_TICKS = 2

/** What `advance` returns when the wire is empty. */
const EMPTY = Symbol("empty")

/** What `advance` returns when a packet ended the connection. */
class Ended {
  readonly reason: CloseReason.CloseReason
  constructor(reason: CloseReason.CloseReason) {
    this.reason = reason
  }
}

/** The outcome of `advance`: the wire is empty, the connection ends, or something to wait for first. */
type Step = typeof EMPTY | Ended | Effect.Effect<void, CloseReason.ReaderError>

const MORE = Effect.succeed(true)
const NO_MORE = Effect.succeed(false)

/**
 * One served connection. Its methods live on the prototype and its state in fields, since
 * every connection, idle or not, is one of these: no closures, no fiber, no Deferred until a
 * burst, a takeover or the teardown needs one.
 */
class Connection implements Readable, Watched, Served, ConnectBinding, LiveConnection.TakeOverTarget {
  private readonly core: Core
  private readonly wire: Wire
  private readonly services: Context.Context<never>
  private readonly tracker: Tracker
  private readonly remote: string
  private readonly clock: Clock.Clock
  private readonly context: ConnectionContext.ConnectionContext
  private readonly outbox: Outbox.Outbox
  private readonly decoder: Decoder
  private readonly acceptedAt: number
  private lastActivity: number
  // the state machine: `step` feeds it an event and performs what it asks
  private phase: ConnectionPhase.Phase = ConnectionPhase.awaitingConnect
  /** The fiber reading (or tearing down), while there is one. */
  private reading: Fiber.Fiber<unknown, unknown> | undefined = undefined
  /** Resumes the reader waiting for bytes: `true`, there are some; `false`, it has waited long enough. */
  private parked: ((more: Effect.Effect<boolean>) => void) | undefined = undefined
  /** Watchdog ticks the reader has waited through. */
  private parkedTicks = 0
  /** A reader ended since the last watchdog tick: bytes that come now make the connection busy. */
  private justEnded = false
  /** Its reader waits for more bytes before it ends (see `LINGER_TICKS`). */
  private busy = false
  /** The teardown has started: no more bursts. */
  private finishing = false
  /** The teardown has finished. */
  private ended = false
  /** Who waits for the end (a takeover, the listener stopping); made at the first one. */
  private endWaiters: Array<() => void> | undefined = undefined
  /** The share of the upload budget, made at the first large packet. */
  private paced: PacedReader | undefined = undefined
  // where `advance` is: the chunks read and the next one to decode, the packets decoded and the next one to handle
  private chunks: ReadonlyArray<Uint8Array> | undefined = undefined
  private chunkAt = 0
  private decoded: Codec.Decoded | undefined = undefined
  private packetAt = 0
  /** A packet was handled since the last check for a close or a congested subscriber. */
  private handled = false
  /** A handler's remaining work ended the connection for this reason. */
  private closedBy: CloseReason.CloseReason | undefined = undefined
  /** What `readable` found to wait for while the reader was parked: the reader's next step. */
  private handover: Step | undefined = undefined
  /** This burst read bytes (the first one, started before any came, may find none). */
  private readInBurst = false

  constructor(core: Core, wire: Wire, peer: Peer.Peer, services: Context.Context<never>, tracker: Tracker) {
    this.core = core
    this.wire = wire
    this.services = services
    this.tracker = tracker
    this.remote = peer.remote
    // every time this connection reads (connect timeout, keepalive, message expiry) comes from Effect's Clock
    this.clock = Context.get(services, Clock.Clock)
    this.outbox = Outbox.make(wire.writer, core.config.maxOutboxBytes, core.stats)
    this.context = ConnectionContext.make(core, this.outbox, peer.remote, peer.certificate)
    this.decoder = Codec.makeDecoder(core.config.maxPacketSize, core.receiving)
    this.acceptedAt = this.clock.currentTimeMillisUnsafe()
    this.lastActivity = this.acceptedAt
  }

  /** Starts serving: watched for the connect timeout, told when bytes arrive. */
  start(): void {
    this.core.stats.socketsAccepted++
    this.tracker.add(this)
    // an Effect socket's writer (WebSocket) needs a fiber to write; a direct one writes from the sends
    if (!this.wire.direct) this.fork(Effect.exit(this.outbox.run))
    this.core.watchdog.add(this)
    this.wire.notify(this)
    // an Effect socket's wire may have received bytes before it had a reader; a net socket's
    // first bytes come in a later turn of the event loop, and will tell this connection
    if (!this.wire.direct) this.readable()
  }

  /** Runs `effect` in a fiber of its own (started at once), with the listener's services and this connection's log annotation. */
  private fork<A, E>(effect: Effect.Effect<A, E>): void {
    Effect.runForkWith(this.services)(Effect.annotateLogs(effect, { remote: this.remote }))
  }

  // ---- the state machine

  private step(event: ConnectionPhase.Event): void {
    const next = ConnectionPhase.transition(this.phase, event)
    this.phase = next.phase
    for (const action of next.actions) {
      if (action._tag === "StopReading") {
        // a handler runs to completion: the interruption waits for it, so no packet is half-handled;
        // an idle connection has nobody reading: its teardown starts here
        if (this.reading !== undefined) this.reading.interruptUnsafe()
        else if (!this.finishing) this.fork(this.teardown(this.closingReason()))
      } else {
        const properties = action.reasonString === undefined ? {} : { properties: { reasonString: action.reasonString } }
        this.outbox.send(Codec.encode({ cmd: "disconnect", reasonCode: action.code, ...properties }, 5))
      }
    }
  }

  private closingReason(): CloseReason.CloseReason {
    return this.phase._tag === "Closing" ? this.phase.reason : CloseReason.BrokerShutdown
  }

  /** Asks the connection to close for `reason` and waits until it has ended. */
  private closeAndWait(reason: CloseReason.CloseReason): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.step({ _tag: "CloseRequested", reason })
      if (this.ended) return Effect.void
      return Effect.callback<void>((resume) => {
        ;(this.endWaiters ??= []).push(() => resume(Effect.void))
      })
    })
  }

  /** Served: the listener stops. */
  get stop(): Effect.Effect<void> {
    return this.closeAndWait(CloseReason.BrokerShutdown)
  }

  /** TakeOverTarget: a new connection takes the session over. */
  takeOver(): Effect.Effect<void> {
    return this.closeAndWait(CloseReason.TakenOver)
  }

  /** Watched: when the watchdog closes it. */
  deadline(): number {
    return ConnectionPhase.deadline(
      this.phase,
      this.acceptedAt,
      this.core.config.connectTimeoutMs,
      this.lastActivity,
      this.context.protocol.keepaliveMs
    )
  }

  /** Watched: the deadline passed. */
  expire(): void {
    this.step({ _tag: "CloseRequested", reason: ConnectionPhase.expiryReason(this.phase) })
  }

  /** ConnectBinding: this connection's registry entry. */
  makeLive(clientId: string, topicAliasMaximum: number, maximumPacketSize: number | undefined): Live {
    return LiveConnection.make({
      core: this.core,
      outbox: this.outbox,
      clock: this.clock,
      clientId,
      version: this.context.protocol.version,
      session: this.context.session,
      topicAliasMaximum,
      maximumPacketSize,
      connection: this
    })
  }

  /** ConnectBinding: the client is connected. */
  accepted(problemInformation: boolean): void {
    this.step({ _tag: "ConnectAccepted", v5: this.context.protocol.version === 5, problemInformation })
  }

  // ---- reading

  /** Watched: a watchdog tick. A reader that has waited through `LINGER_TICKS` of them ends (the connection is idle). */
  tick(): void {
    this.justEnded = false
    const parked = this.parked
    if (parked === undefined || ++this.parkedTicks < LINGER_TICKS) return
    this.parked = undefined
    this.busy = false
    // from here on, bytes start a new burst; the one parked only ends
    this.reading = undefined
    parked(NO_MORE)
  }

  /** Readable: bytes (or the end) arrived. Wakes the reader, or starts one unless it is running or the connection is on its way out. */
  readable(): void {
    if (this.finishing) return
    const parked = this.parked
    if (parked !== undefined) {
      // the reader is parked between bursts: handle what came right here, and wake it only for
      // what has to wait (see `advance`)
      let step: Step
      try {
        step = this.advance()
      } catch (defect) {
        step = Effect.die(defect)
      }
      // closed while a handler ran (its reader interrupted): the teardown has taken over
      if (this.parked !== parked) return
      if (step === EMPTY) {
        this.outbox.flushNow()
        this.parkedTicks = 0
        return
      }
      this.handover = step
      this.parked = undefined
      return parked(MORE)
    }
    if (this.reading !== undefined) return
    if (this.justEnded) this.busy = true
    this.fork(this.burst())
  }

  /** Waits for bytes; false once it has waited long enough (see `tick`). */
  private park(): Effect.Effect<boolean> {
    return Effect.callback<boolean>((resume) => {
      this.parked = resume
      this.parkedTicks = 0
      return Effect.sync(() => {
        if (this.parked === resume) this.parked = undefined
      })
    })
  }

  /**
   * One burst: reads until the wire has stayed empty for a while (the connection goes idle) or a
   * packet ends the connection. Only the reading can be interrupted (by `step`, a handler running to completion
   * first); whatever ends it other than going idle runs the teardown, in this fiber.
   */
  private burst(): Effect.Effect<void> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.withFiber((fiber) => {
        // set from inside: the fiber runs at once, and may be done (idle again) before `fork` returns
        this.reading = fiber
        return Effect.flatMap(Effect.exit(restore(this.readLoop())), (exit) =>
          Exit.isSuccess(exit) && exit.value === IDLE ? Effect.void : this.teardown(CloseReason.ofExit(exit as Exit.Exit<CloseReason.CloseReason, CloseReason.ReaderError>))
        )
      })
    )
  }

  /** The first packet: only CONNECT is accepted. */
  private first(packet: Packet): Effect.Effect<void, CloseReason.ReaderError> {
    if (packet.cmd !== "connect") {
      return Effect.fail(new ProtocolViolation({ reason: `first packet was ${packet.cmd.toUpperCase()}, not CONNECT` }))
    }
    this.step(ConnectionPhase.connectReceived)
    return timed(handleConnect(this.context, packet, this), this.core.stats.connectDuration)
  }

  /**
   * Reads what the wire holds: IDLE once it has stayed empty for a while, or the reason a packet
   * ends the connection. The work is done by `advance`; the fiber only runs what has to wait.
   */
  private readLoop(): Effect.Effect<CloseReason.CloseReason | typeof IDLE, CloseReason.ReaderError> {
    const self = this
    const { outbox } = this
    return Effect.gen(function*() {
      self.readInBurst = false
      while (true) {
        const step = self.handover ?? self.advance()
        self.handover = undefined
        if (step === EMPTY) {
          // what these bytes produced for this client (PUBACKs to a publisher, the messages a
          // subscriber's PUBACKs let into its window) goes out now, before other sockets are read:
          // a subscriber's window turns around a poll phase sooner. Deliveries to other clients
          // still go out at the end of the turn, one write per outbox for all publishers' bursts.
          outbox.flushNow()
          // nothing more for now: a busy connection waits a little, then ends (`tick` has made sure
          // the next bytes start another burst); any other ends now (decided here, synchronously,
          // so no bytes are missed)
          if (self.busy) {
            if (yield* self.park()) continue
            return IDLE
          }
          self.reading = undefined
          self.justEnded = self.readInBurst
          return IDLE
        }
        if (step instanceof Ended) return step.reason
        yield* step
        const closed = self.closedBy
        if (closed !== undefined) {
          self.closedBy = undefined
          return closed
        }
      }
    })
  }

  /**
   * Handles what the wire holds for as long as that takes no waiting: decodes, runs each packet's
   * handler, reads on. Returns EMPTY once the wire is empty, `Ended` when a packet ends the
   * connection, or the Effect to wait for (a handler with work left, a congested subscriber, the
   * receive budget, the upload pace) — after which the next call carries on where this one stopped.
   * Called by the reader fiber, and by `readable` itself while that fiber is parked: a PUBLISH or an
   * ack whose handler did all its work when called costs no fiber step at all (no resume, no
   * suspension, none of the allocations they make; ~2 per read at 2,000 msg/s).
   */
  private advance(): Step {
    const { core, decoder, context } = this
    const { stats } = core
    while (true) {
      if (this.handled) {
        this.handled = false
        // closed from outside while the handler ran: the packets after it are not handled
        if (this.phase._tag === "Closing") return new Ended(this.phase.reason)
        // a delivery found a subscriber congested: read no more from this socket until it drains
        if (core.registry.flow.held.size !== 0) return core.registry.flow.awaitRelease(context.session.clientId)
      }
      const decoded = this.decoded
      if (decoded !== undefined) {
        if (this.packetAt < decoded.packets.length) {
          const packet = decoded.packets[this.packetAt++]!
          this.handled = true
          const handling = this.phase._tag === "AwaitingConnect" ? this.first(packet) : dispatch(context, packet)
          // a handler that did all its work when called (the synchronous paths of PUBLISH and
          // the acks) returns Effect.void: nothing is left to run
          if (handling !== Effect.void) return this.settle(handling)
          continue
        }
        this.decoded = undefined
        const error = decoded.error
        if (error !== undefined) {
          const refusal = this.phase._tag === "AwaitingConnect" ? refusalFor(error) : undefined
          if (refusal !== undefined) this.outbox.send(refusal)
          return Effect.fail(new DecodeError({ reason: error }))
        }
        // a large packet waits for room among all partly received ones: this socket is not read meanwhile
        const waitingFor = decoder.waitingFor()
        if (waitingFor !== 0) {
          return Effect.map(core.receiving.take(waitingFor, (bytes) => decoder.adopt(bytes)), () => this.decodedNow(Codec.resume(decoder)))
        }
        // a large upload reads on within the byte rate the event loop's lag allows (UploadPacer)
        if (decoder.receivingLarge()) {
          const chunk = this.chunks![this.chunkAt - 1]!
          return (this.paced ??= core.pacer.reader()).pace(chunk.length)
        }
      }
      const chunks = this.chunks
      if (chunks !== undefined && this.chunkAt < chunks.length) {
        const chunk = chunks[this.chunkAt++]!
        stats.bytesReceived += chunk.length
        this.decodedNow(decoder.decode(chunk))
        continue
      }
      this.chunks = undefined
      const read = this.wire.read()
      if (read === undefined) return EMPTY
      this.readInBurst = true
      if (!isChunks(read)) return Effect.fail(read)
      this.lastActivity = this.clock.currentTimeMillisUnsafe()
      this.chunks = read
      this.chunkAt = 0
    }
  }

  /** The packets of a decoded chunk are next. */
  private decodedNow(decoded: Codec.Decoded): void {
    this.core.stats.packetsReceived += decoded.packets.length
    this.decoded = decoded
    this.packetAt = 0
  }

  /** A handler's remaining work, run to completion; the reason it ends the connection, if any, for `readLoop`. */
  private settle(handling: Effect.Effect<CloseReason.CloseReason | void, CloseReason.ReaderError>): Effect.Effect<void, CloseReason.ReaderError> {
    return Effect.map(Effect.uninterruptible(handling), (closed) => {
      if (closed !== undefined) this.closedBy = closed
    })
  }

  // ---- the end

  /** The end of the session side: the session transition, the will, the log line. */
  private endSession(reason: CloseReason.CloseReason, live: Live): Effect.Effect<void, never> {
    const { core, context } = this
    return Effect.gen(function*() {
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
    }) as Effect.Effect<void, never>
  }

  /** The one way out, whatever the reason; runs once. */
  private teardown(stoppedFor: CloseReason.CloseReason): Effect.Effect<void> {
    const self = this
    const { core, context, decoder, outbox } = this
    return Effect.gen(function*() {
      self.finishing = true
      self.step({ _tag: "ReaderStopped", reason: stoppedFor })
      const reason = self.closingReason()
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
      core.watchdog.delete(self)
      const live = context.session.live
      if (live !== undefined) yield* self.endSession(reason, live).pipe(Effect.annotateLogs(annotations))
    }).pipe(
      Effect.catchCause((cause) => Effect.logError("session teardown failed", cause)),
      Effect.ensuring(Effect.suspend(() => {
        decoder.dispose()
        outbox.close()
        return outbox.finished.pipe(Effect.timeoutOption(FLUSH_TIMEOUT_MS), Effect.asVoid)
      })),
      Effect.ensuring(Effect.sync(() => self.end()))
    )
  }

  /** The connection is over: the socket closes, and whoever waited for the end goes on. */
  private end(): void {
    this.ended = true
    this.reading = undefined
    this.wire.close()
    this.tracker.delete(this)
    const waiters = this.endWaiters
    this.endWaiters = undefined
    if (waiters !== undefined) for (const resume of waiters) resume()
  }
}

/** Serves accepted connections for `core`: the handler every listener is given. */
export const serve = (core: Core): Handler => (wire, services, tracker) => {
  const peer = Peer.identify(core, wire)
  if (peer === undefined) return wire.close()
  new Connection(core, wire, peer, services, tracker).start()
}
