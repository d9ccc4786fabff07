/**
 * The life of one connection as a state machine, as data: the phases it goes through, the
 * events that move it, and the actions each step asks of the connection program. `transition`
 * is pure; `Connection.ts` feeds it events and performs the actions.
 *
 * ```
 * AwaitingConnect ──ConnectReceived──▶ Connecting ──ConnectAccepted──▶ Live
 *        └──────────────────┴────── CloseRequested / ReaderStopped ─────┴──▶ Closing(reason)
 * ```
 *
 * A close comes from outside (takeover, keepalive, connect timeout: `CloseRequested`, which stops
 * the reader) or from the reader itself ending (DISCONNECT, a violation, a refused CONNECT, a lost
 * socket, a bug, shutdown: `ReaderStopped`). The first reason wins, except that a client's own
 * DISCONNECT, handled before the reader saw a close request, still counts as the client leaving.
 * The farewell (MQTT 5 DISCONNECT) is only sent once the reader has stopped, so it is the last
 * packet after whatever the handler in progress sent.
 */
import type { ReasonCode } from "../protocol/ReasonCode.ts"
import { ConnectTimeout, KeepaliveExpired, type CloseReason, disconnectCode, reasonString } from "./CloseReason.ts"

/** Before the first packet. */
export interface AwaitingConnect {
  readonly _tag: "AwaitingConnect"
}

/** CONNECT received and being checked (authentication, takeover, session). */
export interface Connecting {
  readonly _tag: "Connecting"
}

/** CONNACK sent: the client is connected. */
export interface Live {
  readonly _tag: "Live"
  /** Whether the client speaks MQTT 5 (it is told why the broker closes). */
  readonly v5: boolean
  /** MQTT 5: the client accepts reason strings. */
  readonly problemInformation: boolean
}

/** On its way out, for `reason`; `from` is the phase it left. */
export interface Closing {
  readonly _tag: "Closing"
  readonly reason: CloseReason
  readonly from: AwaitingConnect | Connecting | Live
}

/** A connection's phase. */
export type Phase = AwaitingConnect | Connecting | Live | Closing

/** What moves a connection from one phase to the next. */
export type Event =
  | { readonly _tag: "ConnectReceived" }
  | { readonly _tag: "ConnectAccepted"; readonly v5: boolean; readonly problemInformation: boolean }
  | { readonly _tag: "CloseRequested"; readonly reason: CloseReason }
  | { readonly _tag: "ReaderStopped"; readonly reason: CloseReason }

/** What the connection program does after a step. */
export type Action =
  /** Interrupt the reader (once the packet it is handling is done). */
  | { readonly _tag: "StopReading" }
  /** MQTT 5: send DISCONNECT with this code (and the reason string, when there is one the client accepts). */
  | { readonly _tag: "SendDisconnect"; readonly code: ReasonCode; readonly reasonString: string | undefined }

/** A new phase and what to do about it. */
export interface Step {
  readonly phase: Phase
  readonly actions: ReadonlyArray<Action>
}

/** The phase every connection starts in. */
export const awaitingConnect: AwaitingConnect = { _tag: "AwaitingConnect" }
/** See `Connecting`. */
export const connecting: Connecting = { _tag: "Connecting" }
/** The event of a CONNECT arriving. */
export const connectReceived: Event = { _tag: "ConnectReceived" }

const LIVE: ReadonlyArray<Live> = [
  { _tag: "Live", v5: false, problemInformation: false },
  { _tag: "Live", v5: false, problemInformation: true },
  { _tag: "Live", v5: true, problemInformation: false },
  { _tag: "Live", v5: true, problemInformation: true }
]
const NOTHING: ReadonlyArray<Action> = []
const STOP_READING: ReadonlyArray<Action> = [{ _tag: "StopReading" }]

/** The live phase for these options (one shared value each: a connection allocates none). */
const live = (v5: boolean, problemInformation: boolean): Live => LIVE[(v5 ? 2 : 0) + (problemInformation ? 1 : 0)]!

/** The DISCONNECT a connection leaving `from` for `reason` sends: only a live MQTT 5 client is told. */
export const farewell = (from: Closing["from"], reason: CloseReason): ReadonlyArray<Action> => {
  if (from._tag !== "Live" || !from.v5) return NOTHING
  const code = disconnectCode(reason)
  if (code === undefined) return NOTHING
  return [{ _tag: "SendDisconnect", code, reasonString: from.problemInformation ? reasonString(reason) : undefined }]
}

/**
 * One step of the machine. Events that make no sense in a phase (a second CONNECT, which the
 * decoder refuses before it gets here; an acceptance after a close) leave it as it is.
 */
export const transition = (phase: Phase, event: Event): Step => {
  switch (event._tag) {
    case "ConnectReceived":
      return { phase: phase._tag === "AwaitingConnect" ? connecting : phase, actions: NOTHING }
    case "ConnectAccepted":
      return { phase: phase._tag === "Connecting" ? live(event.v5, event.problemInformation) : phase, actions: NOTHING }
    case "CloseRequested":
      return phase._tag === "Closing"
        ? { phase, actions: NOTHING }
        : { phase: { _tag: "Closing", reason: event.reason, from: phase }, actions: STOP_READING }
    case "ReaderStopped": {
      if (phase._tag !== "Closing") {
        return { phase: { _tag: "Closing", reason: event.reason, from: phase }, actions: farewell(phase, event.reason) }
      }
      // the client's DISCONNECT was handled before the close request reached the reader: it left on its own
      const reason = event.reason._tag === "ClientDisconnect" ? event.reason : phase.reason
      return { phase: reason === phase.reason ? phase : { ...phase, reason }, actions: farewell(phase.from, reason) }
    }
  }
}

/** When the connection must be closed if nothing happens (epoch ms; `Infinity` for never). */
export const deadline = (
  phase: Phase,
  acceptedAt: number,
  connectTimeoutMs: number,
  lastActivity: number,
  keepaliveMs: number
): number => {
  switch (phase._tag) {
    case "AwaitingConnect":
    case "Connecting":
      return acceptedAt + connectTimeoutMs
    case "Live":
      // 1.5 × the keepalive with no packet [MQTT-3.1.2-24]
      return keepaliveMs > 0 ? lastActivity + keepaliveMs * 1.5 : Infinity
    case "Closing":
      return Infinity
  }
}

/** Why a connection whose deadline passed in `phase` is closed. */
export const expiryReason = (phase: Phase): CloseReason => (phase._tag === "Live" ? KeepaliveExpired : ConnectTimeout)
