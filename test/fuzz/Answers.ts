/**
 * What a probe saw, and the answers the spec allows. A class's expectation is a list of allowed
 * answers plus the clause that names them; a deviation is an observation no allowed answer matches.
 */
import { describePacket, type ServerPacket } from "./Wire.ts"

/** What came back on one hostile connection after the bad bytes were written. */
export interface Observation {
  /** The valid CONNECT sent first (post-CONNECT classes) was not accepted: the case did not run. */
  readonly setupError?: string
  /** Packets received after the bad bytes were written, in order. */
  readonly packets: ReadonlyArray<ServerPacket>
  /** Whether the broker closed the connection within the wait. */
  readonly closed: boolean
  /** Milliseconds from the bad bytes to the close. */
  readonly closedAfterMs?: number
  /** The connection was left open and answered a PINGREQ sent after the answer (stays-up classes). */
  readonly stayedUp: boolean
  /** How long the probe waited (for the answer, then for the close). */
  readonly waitedMs: number
  /** Set when the broker's bytes could not be decoded as server packets. */
  readonly undecodable?: string
}

/** One answer the spec allows. */
export interface Answer {
  readonly label: string
  readonly matches: (observation: Observation) => boolean
}

/** What a class must be answered with, and why. */
export interface Expectation {
  /** The spec clause(s), e.g. "MQTT-3.1.2-2" or "v5 §3.2.2.2 0x84". */
  readonly clause: string
  readonly allowed: ReadonlyArray<Answer>
}

/** One expected server packet. */
export interface PacketMatcher {
  readonly label: string
  readonly test: (packet: ServerPacket) => boolean
}

const hex = (n: number): string => `0x${n.toString(16).padStart(2, "0")}`
const codeList = (codes: ReadonlyArray<number>): string => codes.map(hex).join("/")

/** CONNACK with one of `codes`; `form` pins the 3.1.1 (2-byte) or MQTT 5 layout when given. */
export const connack = (codes: ReadonlyArray<number>, form?: 3 | 5): PacketMatcher => ({
  label: `CONNACK ${codeList(codes)}${form === 3 ? " (3.1.1 form)" : form === 5 ? " (v5 form)" : ""}`,
  test: (p) => p.type === 2 && codes.includes(p.code!) && (form === undefined || p.form === form)
})

/** CONNACK with any refusing code (never 0). */
export const refusingConnack: PacketMatcher = {
  label: "CONNACK ≠ 0",
  test: (p) => p.type === 2 && p.code !== 0
}

/** DISCONNECT with one of `codes`. */
export const disconnect = (codes: ReadonlyArray<number>): PacketMatcher => ({
  label: `DISCONNECT ${codeList(codes)}`,
  test: (p) => p.type === 14 && codes.includes(p.code!)
})

/** A packet of `type` for which `test` holds. */
export const packetOf = (label: string, type: number, test: (p: ServerPacket) => boolean = () => true): PacketMatcher => ({
  label,
  test: (p) => p.type === type && test(p)
})

/** The broker closes the connection after sending exactly `before` (nothing, if empty). */
export const closes = (...before: ReadonlyArray<PacketMatcher>): Answer => ({
  label: before.length === 0 ? "close, nothing sent" : `${before.map((m) => m.label).join(", ")}, then close`,
  matches: (o) =>
    o.closed && o.undecodable === undefined && o.packets.length === before.length && before.every((m, i) => m.test(o.packets[i]!))
})

/** The broker answers with exactly `answer` and keeps the connection (a later PINGREQ is answered). */
export const staysUp = (...answer: ReadonlyArray<PacketMatcher>): Answer => ({
  label: `${answer.map((m) => m.label).join(", ")}, connection stays up`,
  matches: (o) => {
    if (o.closed || !o.stayedUp || o.undecodable !== undefined) return false
    const replies = o.packets.filter((p) => p.type !== 13)
    return replies.length === answer.length && answer.every((m, i) => m.test(replies[i]!))
  }
})

/** Whatever the broker does, as long as every byte it sends is a well-formed server packet. */
export const anyWellFormed: Answer = {
  label: "any well-formed answer (close or stay up)",
  matches: (o) => o.undecodable === undefined
}

/** Whether `observation` is one of the allowed answers. */
export const isAllowed = (expectation: Expectation, observation: Observation): boolean =>
  observation.setupError === undefined && expectation.allowed.some((answer) => answer.matches(observation))

/** What the broker did, in one line: `CONNACK(0x01), then close after 3 ms`. */
export const describeObservation = (o: Observation): string => {
  if (o.setupError !== undefined) return `setup failed: ${o.setupError}`
  const sent = o.packets.length === 0 ? "nothing" : o.packets.map(describePacket).join(", ")
  const bad = o.undecodable !== undefined ? ` [undecodable: ${o.undecodable}]` : ""
  const end = o.closed
    ? `then close after ${o.closedAfterMs ?? "?"} ms`
    : o.stayedUp
    ? "connection stays up"
    : `connection left open and silent for ${o.waitedMs} ms`
  return `${sent}, ${end}${bad}`
}
