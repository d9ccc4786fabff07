/**
 * The commands a scenario is made of, their fast-check arbitraries, and readable `toString`s so
 * that a shrunk counterexample reads like a protocol trace. Commands are plain data; the harness
 * gives them meaning at replay time (a command for a client that is offline is skipped, an MQTT 5
 * option on a 3.1.1 connection is ignored), so any shrunk list is still a valid scenario.
 *
 * Connects are MQTT 3.1.1 or MQTT 5. A 3.1.1 connect has only clean session: the harness maps it
 * the way the broker does (clean=1: expiry 0; clean=0: the broker's configured expiry; the broker's
 * in-flight window). An MQTT 5 connect picks Clean Start and Session Expiry Interval
 * independently, its own Receive Maximum (which may change between reconnects), optionally a
 * Maximum Packet Size and a will with a Will Delay Interval.
 */
import * as fc from "fast-check"
import type { QoS } from "../../src/session/Message.ts"
import { CLIENTS, FILTERS, NEVER, TOPICS } from "./Model.ts"

/** Which packet id an acknowledgement names: the k-th id the client holds, or a literal one. */
export type Target = { readonly held: number } | { readonly raw: number }

export interface WillSpec {
  readonly topic: string
  readonly qos: QoS
  readonly retain: boolean
  /** MQTT 5 Will Delay Interval in seconds (ignored for 3.1.1). */
  readonly delay: number
}

export type AckKind = "puback" | "pubrec" | "pubcomp"

/** What a CONNECT carries. */
export interface ConnectSpec {
  readonly client: number
  /** 4: MQTT 3.1.1, 5: MQTT 5. */
  readonly version: 4 | 5
  readonly clean: boolean
  /** MQTT 5 Session Expiry Interval in seconds (3.1.1: derived from `clean` by the harness). */
  readonly expiryInterval: number
  /** MQTT 5 Receive Maximum (3.1.1: the broker's window). */
  readonly receiveMaximum: number
  /** MQTT 5 Maximum Packet Size, if the client sets one. */
  readonly maximumPacketSize: number | undefined
  readonly will: WillSpec | undefined
}

export type Command =
  /** A client connects (taking over the live connection with its id, if there is one). */
  | ({ readonly _tag: "Connect" } & ConnectSpec)
  /** A second connection with the id of a client that is online (skipped while it is offline). */
  | ({ readonly _tag: "Takeover" } & ConnectSpec)
  | { readonly _tag: "Subscribe"; readonly client: number; readonly filter: string; readonly qos: QoS }
  | { readonly _tag: "Unsubscribe"; readonly client: number; readonly filter: string }
  /** An application message; `expiresIn` seconds is its MQTT 5 Message Expiry Interval, `pad` bytes make it larger. */
  | {
    readonly _tag: "Publish"
    readonly topic: string
    readonly qos: QoS
    readonly retain: boolean
    readonly expiresIn: number | undefined
    readonly pad: number
  }
  /** The acknowledgement the protocol calls for at the held message's stage (PUBACK, PUBREC or PUBCOMP). */
  | { readonly _tag: "Ack"; readonly client: number; readonly target: Target }
  /** The client acknowledges everything it holds, oldest first, one protocol step each (PUBREC before PUBCOMP). */
  | { readonly _tag: "AckAll"; readonly client: number }
  /** A given acknowledgement, right or wrong for the message it names. */
  | { readonly _tag: "RawAck"; readonly client: number; readonly kind: AckKind; readonly target: Target }
  /** The client sends a QoS 2 PUBLISH (a re-send when its exchange on that id is still open). */
  | { readonly _tag: "Qos2Publish"; readonly client: number; readonly packetId: number; readonly topic: string; readonly retain: boolean }
  | { readonly _tag: "Qos2Pubrel"; readonly client: number; readonly packetId: number }
  /**
   * DISCONNECT. MQTT 5 only (ignored for 3.1.1): `expiryInterval` sets a new Session Expiry
   * Interval, `withWill` is reason code 0x04 (Disconnect with Will Message: the will is published).
   */
  | { readonly _tag: "Disconnect"; readonly client: number; readonly expiryInterval: number | undefined; readonly withWill: boolean }
  | { readonly _tag: "ConnectionLost"; readonly client: number }
  /**
   * Time passes; then, if `sweep`, the broker's sweep applies `Sessions.expire` to every offline
   * session whose deadline is due (without it, the next CONNECT may come before the sweep).
   */
  | { readonly _tag: "Tick"; readonly ms: number; readonly sweep: boolean }

const showTarget = (t: Target): string => ("held" in t ? `held#${t.held}` : `id=${t.raw}`)

const showExpiry = (expiry: number): string => (expiry === NEVER ? "never" : `${expiry}s`)

const showConnect = (name: string, c: ConnectSpec): string => {
  const will = c.will === undefined
    ? ""
    : `, will=${c.will.topic} q${c.will.qos}${c.will.retain ? " retain" : ""}${c.version === 5 && c.will.delay > 0 ? ` delay=${c.will.delay}s` : ""}`
  if (c.version === 4) return `${name}(${CLIENTS[c.client]}, v3.1.1, clean=${c.clean ? 1 : 0}${will})`
  const size = c.maximumPacketSize === undefined ? "" : `, maxPacket=${c.maximumPacketSize}`
  return `${name}(${CLIENTS[c.client]}, v5, cleanStart=${c.clean ? 1 : 0}, expiry=${showExpiry(c.expiryInterval)}, ` +
    `receiveMax=${c.receiveMaximum}${size}${will})`
}

export const showCommand = (c: Command): string => {
  switch (c._tag) {
    case "Connect":
      return showConnect("connect", c)
    case "Takeover":
      return showConnect("takeover", c)
    case "Subscribe":
      return `subscribe(${CLIENTS[c.client]}, "${c.filter}", q${c.qos})`
    case "Unsubscribe":
      return `unsubscribe(${CLIENTS[c.client]}, "${c.filter}")`
    case "Publish":
      return `publish("${c.topic}", q${c.qos}${c.retain ? ", retain" : ""}${c.expiresIn === undefined ? "" : `, expiry=${c.expiresIn}s`}${
        c.pad > 0 ? `, +${c.pad}B` : ""
      })`
    case "Ack":
      return `ack(${CLIENTS[c.client]}, ${showTarget(c.target)})`
    case "AckAll":
      return `ackAll(${CLIENTS[c.client]})`
    case "RawAck":
      return `${c.kind}(${CLIENTS[c.client]}, ${showTarget(c.target)})`
    case "Qos2Publish":
      return `qos2Publish(${CLIENTS[c.client]}, id=${c.packetId}, "${c.topic}"${c.retain ? ", retain" : ""})`
    case "Qos2Pubrel":
      return `pubrel(${CLIENTS[c.client]}, id=${c.packetId})`
    case "Disconnect": {
      const options = [
        ...(c.expiryInterval === undefined ? [] : [`expiry=${showExpiry(c.expiryInterval)}`]),
        ...(c.withWill ? ["reason=0x04 (with will)"] : [])
      ]
      return `disconnect(${[CLIENTS[c.client], ...options].join(", ")})`
    }
    case "ConnectionLost":
      return `connectionLost(${CLIENTS[c.client]})`
    case "Tick":
      return `tick(${c.ms}ms${c.sweep ? "" : ", no sweep"})`
  }
}

/** Gives a command the readable form fast-check prints in counterexamples. */
const printable = <C extends Command>(command: C): C =>
  Object.defineProperty(command, fc.toStringMethod, { value: () => showCommand(command), enumerable: false })

/** QoS 1 and 2 are what the session layer is about, so they are more frequent than QoS 0. */
const qos: fc.Arbitrary<QoS> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<QoS>(0) },
  { weight: 2, arbitrary: fc.constant<QoS>(1) },
  { weight: 2, arbitrary: fc.constant<QoS>(2) }
)
const client = fc.integer({ min: 0, max: CLIENTS.length - 1 })
const topic = fc.constantFrom(...TOPICS)
const target: fc.Arbitrary<Target> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(7).map((held): Target => ({ held })) },
  { weight: 1, arbitrary: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constant(65535)).map((raw): Target => ({ raw })) }
)

/** MQTT 5 Session Expiry Intervals: ends with the connection, a few seconds (so that ticks reach it), never. */
const expiryArb = fc.constantFrom(0, 2, 3, 5, NEVER)

/** How often each kind of command is generated; a property focuses by choosing its weights. */
export interface Weights {
  readonly connect: number
  readonly takeover: number
  readonly subscribe: number
  readonly unsubscribe: number
  readonly publish: number
  readonly ack: number
  readonly ackAll: number
  readonly rawAck: number
  readonly qos2: number
  readonly disconnect: number
  readonly lost: number
  readonly tick: number
  /** Weight of ticks the sweep does not follow, among ticks (those it follows have weight 3). */
  readonly noSweep: number
  /** Weight of clean=1 among connects (clean=0 has weight 3). */
  readonly clean: number
  /** Weight of MQTT 5 among connects (3.1.1 has weight `v3`). */
  readonly v5: number
  readonly v3: number
  /** Weight of messages with a Message Expiry Interval (those without have weight 3). */
  readonly expiring: number
}

export const balanced: Weights = {
  connect: 3,
  takeover: 1,
  subscribe: 3,
  unsubscribe: 1,
  publish: 5,
  ack: 5,
  ackAll: 2,
  rawAck: 1,
  qos2: 2,
  disconnect: 1,
  lost: 1,
  tick: 1,
  noSweep: 1,
  clean: 2,
  v5: 1,
  v3: 1,
  expiring: 1
}

const weighted = <T>(choices: ReadonlyArray<readonly [number, fc.Arbitrary<T>]>): fc.Arbitrary<T> =>
  fc.oneof(...choices.filter(([weight]) => weight > 0).map(([weight, arbitrary]) => ({ weight, arbitrary })))

/** A CONNECT; `maxReceiveMaximum` bounds most MQTT 5 windows (some go up to 8). */
export const connectSpecArbitrary = (w: Weights, maxReceiveMaximum: number): fc.Arbitrary<ConnectSpec> =>
  fc
    .record({
      client,
      version: weighted<4 | 5>([[w.v3, fc.constant(4)], [w.v5, fc.constant(5)]]),
      clean: weighted([[3, fc.constant(false)], [w.clean, fc.constant(true)]]),
      expiryInterval: expiryArb,
      receiveMaximum: weighted([[3, fc.integer({ min: 1, max: maxReceiveMaximum })], [1, fc.integer({ min: 1, max: 8 })], [1, fc.constant(1)]]),
      // small enough that some generated messages exceed it (they are 12 to 34 bytes)
      maximumPacketSize: weighted<number | undefined>([[2, fc.constant(undefined)], [1, fc.integer({ min: 14, max: 26 })]]),
      will: fc.option(fc.record({ topic, qos, retain: fc.boolean(), delay: fc.constantFrom(0, 0, 1, 2, 4) }), {
        nil: undefined,
        freq: 3
      })
    })

export const commandArbitrary = (w: Weights, maxReceiveMaximum = 3): fc.Arbitrary<Command> => {
  const connect = connectSpecArbitrary(w, maxReceiveMaximum)
  const choices: Array<readonly [number, fc.Arbitrary<Command>]> = [
    [w.connect, connect.map((c) => printable({ _tag: "Connect", ...c }))],
    [w.takeover, connect.map((c) => printable({ _tag: "Takeover", ...c }))],
    [
      w.subscribe,
      fc.record({ client, filter: fc.constantFrom(...FILTERS), qos }).map((c) => printable({ _tag: "Subscribe", ...c }))
    ],
    [w.unsubscribe, fc.record({ client, filter: fc.constantFrom(...FILTERS) }).map((c) => printable({ _tag: "Unsubscribe", ...c }))],
    [
      w.publish,
      fc
        .record({
          topic,
          qos,
          retain: fc.boolean(),
          expiresIn: weighted<number | undefined>([[3, fc.constant(undefined)], [w.expiring, fc.integer({ min: 1, max: 4 })]]),
          pad: weighted([[2, fc.constant(0)], [1, fc.integer({ min: 1, max: 12 })]])
        })
        .map((c) => printable({ _tag: "Publish", ...c }))
    ],
    [w.ack, fc.record({ client, target }).map((c) => printable({ _tag: "Ack", ...c }))],
    [w.ackAll, client.map((c) => printable({ _tag: "AckAll", client: c }))],
    [
      w.rawAck,
      fc
        .record({ client, kind: fc.constantFrom<AckKind>("puback", "pubrec", "pubcomp"), target })
        .map((c) => printable({ _tag: "RawAck", ...c }))
    ],
    [
      w.qos2,
      fc
        .record({ client, packetId: fc.integer({ min: 1, max: 3 }), topic, retain: fc.boolean() })
        .map((c) => printable({ _tag: "Qos2Publish", ...c }))
    ],
    [
      w.qos2,
      fc.record({ client, packetId: fc.integer({ min: 1, max: 3 }) }).map((c) => printable({ _tag: "Qos2Pubrel", ...c }))
    ],
    [
      w.disconnect,
      fc
        .record({
          client,
          expiryInterval: weighted<number | undefined>([[2, fc.constant(undefined)], [1, expiryArb]]),
          withWill: weighted([[3, fc.constant(false)], [1, fc.constant(true)]])
        })
        .map((c) => printable({ _tag: "Disconnect", ...c }))
    ],
    [w.lost, client.map((c) => printable({ _tag: "ConnectionLost", client: c }))],
    [
      w.tick,
      // mostly within the few seconds of the generated expiries and delays, sometimes far past them; whole
      // seconds and half seconds often, so that a deadline (whole seconds after some step) is met exactly
      fc
        .record({
          ms: weighted([
            [3, fc.constantFrom(500, 1000, 2000)],
            [3, fc.integer({ min: 1, max: 2500 })],
            [2, fc.integer({ min: 1, max: 8000 })],
            [1, fc.integer({ min: 1, max: 120_000 })]
          ]),
          sweep: weighted([[3, fc.constant(true)], [w.noSweep, fc.constant(false)]])
        })
        .map((c) => printable({ _tag: "Tick", ...c }))
    ]
  ]
  return weighted(choices)
}

/** One run: broker limits, the broker's in-flight window and 3.1.1 session expiry, and the commands. */
export interface Scenario {
  readonly maxQueuedMessages: number
  readonly queueQos0: boolean
  /** The broker's in-flight window, used for 3.1.1 clients (MQTT 5 clients bring their own Receive Maximum). */
  readonly receiveMaximum: number
  /** The broker's session expiry for 3.1.1 clean=0 sessions (never by default, or a configured few seconds). */
  readonly persistentSessionExpiry: number
  readonly commands: ReadonlyArray<Command>
}

export interface ScenarioShape {
  readonly weights: Weights
  readonly maxCommands: number
  readonly maxReceiveMaximum: number
  readonly maxQueued: number
}

export const scenarioArbitrary = (shape: ScenarioShape): fc.Arbitrary<Scenario> =>
  fc.record({
    maxQueuedMessages: fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 1, max: shape.maxQueued }) },
      { weight: 1, arbitrary: fc.constant(0) }
    ),
    queueQos0: fc.boolean(),
    receiveMaximum: fc.integer({ min: 1, max: shape.maxReceiveMaximum }),
    persistentSessionExpiry: fc.constantFrom(NEVER, NEVER, NEVER, 3),
    commands: fc.array(commandArbitrary(shape.weights, shape.maxReceiveMaximum), { maxLength: shape.maxCommands, size: "max" })
  }, { noNullPrototype: true })
