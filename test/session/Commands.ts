/**
 * The commands a scenario is made of, their fast-check arbitraries, and readable `toString`s so
 * that a shrunk counterexample reads like a protocol trace. Commands are plain data; the harness
 * gives them meaning at replay time (a command for a client that is offline is skipped), so any
 * shrunk list is still a valid scenario.
 */
import * as fc from "fast-check"
import type { QoS } from "../../src/session/Message.ts"
import { EXPIRY_NEVER } from "../../src/session/SessionState.ts"
import { CLIENTS, FILTERS, TOPICS } from "./Model.ts"

/** Which packet id an acknowledgement names: the k-th id the client holds, or a literal one. */
export type Target = { readonly held: number } | { readonly raw: number }

export interface WillSpec {
  readonly topic: string
  readonly qos: QoS
  readonly retain: boolean
}

export type AckKind = "puback" | "pubrec" | "pubcomp"

export type Command =
  | {
    readonly _tag: "Connect"
    readonly client: number
    readonly clean: boolean
    readonly expiryInterval: number
    readonly will: WillSpec | undefined
  }
  | { readonly _tag: "Subscribe"; readonly client: number; readonly filter: string; readonly qos: QoS }
  | { readonly _tag: "Unsubscribe"; readonly client: number; readonly filter: string }
  | { readonly _tag: "Publish"; readonly topic: string; readonly qos: QoS; readonly retain: boolean }
  /** The acknowledgement the protocol calls for at the held message's stage (PUBACK, PUBREC or PUBCOMP). */
  | { readonly _tag: "Ack"; readonly client: number; readonly target: Target }
  /** The client acknowledges everything it holds, oldest first, one protocol step each (PUBREC before PUBCOMP). */
  | { readonly _tag: "AckAll"; readonly client: number }
  /** A given acknowledgement, right or wrong for the message it names. */
  | { readonly _tag: "RawAck"; readonly client: number; readonly kind: AckKind; readonly target: Target }
  /** The client sends a QoS 2 PUBLISH (a re-send when its exchange on that id is still open). */
  | { readonly _tag: "Qos2Publish"; readonly client: number; readonly packetId: number; readonly topic: string; readonly retain: boolean }
  | { readonly _tag: "Qos2Pubrel"; readonly client: number; readonly packetId: number }
  | { readonly _tag: "Disconnect"; readonly client: number }
  | { readonly _tag: "ConnectionLost"; readonly client: number }
  | { readonly _tag: "Tick"; readonly ms: number }

const showTarget = (t: Target): string => ("held" in t ? `held#${t.held}` : `id=${t.raw}`)

export const showCommand = (c: Command): string => {
  switch (c._tag) {
    case "Connect": {
      const expiry = c.expiryInterval === EXPIRY_NEVER ? "never" : String(c.expiryInterval)
      const will = c.will === undefined ? "" : `, will=${c.will.topic} q${c.will.qos}${c.will.retain ? " retain" : ""}`
      return `connect(${CLIENTS[c.client]}, clean=${c.clean ? 1 : 0}, expiry=${expiry}${will})`
    }
    case "Subscribe":
      return `subscribe(${CLIENTS[c.client]}, "${c.filter}", q${c.qos})`
    case "Unsubscribe":
      return `unsubscribe(${CLIENTS[c.client]}, "${c.filter}")`
    case "Publish":
      return `publish("${c.topic}", q${c.qos}${c.retain ? ", retain" : ""})`
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
    case "Disconnect":
      return `disconnect(${CLIENTS[c.client]})`
    case "ConnectionLost":
      return `connectionLost(${CLIENTS[c.client]})`
    case "Tick":
      return `tick(${c.ms}ms)`
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

/** How often each kind of command is generated; a property focuses by choosing its weights. */
export interface Weights {
  readonly connect: number
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
  /** Weight of clean=1 among connects (clean=0 has weight 3). */
  readonly clean: number
}

export const balanced: Weights = {
  connect: 3,
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
  clean: 2
}

export const commandArbitrary = (w: Weights): fc.Arbitrary<Command> => {
  const connect = fc
    .record({
      client,
      clean: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: w.clean, arbitrary: fc.constant(true) }),
      // 3.1.1 persistent sessions never expire; MQTT 5 allows clean start 0 with expiry 0 (ends with the connection)
      persistentExpiry: fc.constantFrom(EXPIRY_NEVER, EXPIRY_NEVER, 300, 0),
      will: fc.option(fc.record({ topic, qos, retain: fc.boolean() }), { nil: undefined, freq: 3 })
    })
    .map(({ clean, client, persistentExpiry, will }) =>
      printable({ _tag: "Connect", client, clean, expiryInterval: clean ? 0 : persistentExpiry, will })
    )
  const choices: Array<fc.WeightedArbitrary<Command>> = [
    { weight: w.connect, arbitrary: connect },
    {
      weight: w.subscribe,
      arbitrary: fc
        .record({ client, filter: fc.constantFrom(...FILTERS), qos })
        .map((c) => printable({ _tag: "Subscribe", ...c }))
    },
    {
      weight: w.unsubscribe,
      arbitrary: fc.record({ client, filter: fc.constantFrom(...FILTERS) }).map((c) => printable({ _tag: "Unsubscribe", ...c }))
    },
    {
      weight: w.publish,
      arbitrary: fc.record({ topic, qos, retain: fc.boolean() }).map((c) => printable({ _tag: "Publish", ...c }))
    },
    { weight: w.ack, arbitrary: fc.record({ client, target }).map((c) => printable({ _tag: "Ack", ...c })) },
    { weight: w.ackAll, arbitrary: client.map((c) => printable({ _tag: "AckAll", client: c })) },
    {
      weight: w.rawAck,
      arbitrary: fc
        .record({ client, kind: fc.constantFrom<AckKind>("puback", "pubrec", "pubcomp"), target })
        .map((c) => printable({ _tag: "RawAck", ...c }))
    },
    {
      weight: w.qos2,
      arbitrary: fc
        .record({ client, packetId: fc.integer({ min: 1, max: 3 }), topic, retain: fc.boolean() })
        .map((c) => printable({ _tag: "Qos2Publish", ...c }))
    },
    {
      weight: w.qos2,
      arbitrary: fc
        .record({ client, packetId: fc.integer({ min: 1, max: 3 }) })
        .map((c) => printable({ _tag: "Qos2Pubrel", ...c }))
    },
    { weight: w.disconnect, arbitrary: client.map((c) => printable({ _tag: "Disconnect", client: c })) },
    { weight: w.lost, arbitrary: client.map((c) => printable({ _tag: "ConnectionLost", client: c })) },
    {
      weight: w.tick,
      arbitrary: fc.integer({ min: 1, max: 120_000 }).map((ms) => printable({ _tag: "Tick", ms }))
    }
  ]
  return fc.oneof(...choices.filter((c) => c.weight > 0))
}

/** One run: broker limits, the client's in-flight window, and the commands. */
export interface Scenario {
  readonly maxQueuedMessages: number
  readonly queueQos0: boolean
  readonly receiveMaximum: number
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
    commands: fc.array(commandArbitrary(shape.weights), { maxLength: shape.maxCommands, size: "max" })
  }, { noNullPrototype: true })
