/**
 * What broker nodes say to each other over Redis, as text: forwarded messages (batched, in the
 * receiving node's stream; nodes that read it get the binary form of `BinaryBatch` instead) and the control events every node hears (filter set changes, retained
 * message changes, a node leaving). Messages are carried in `SessionCodec`'s stored form, so a
 * message crosses nodes exactly as it is stored (payload, properties, expiry).
 * Decoding never throws: text of no known shape is `undefined`, and the caller logs it.
 *
 * @module
 */
import type { Message } from "../session/Message.ts"
import * as SessionCodec from "../session/SessionCodec.ts"
import * as BinaryBatch from "./BinaryBatch.ts"
import type { Forwarded } from "./Forwarded.ts"

export type { Forwarded } from "./Forwarded.ts"

/** An event every node hears on the control channel. */
export type Control =
  /** `node` now holds `filter` (its first local subscriber to it). */
  | { readonly _tag: "FilterAdded"; readonly node: string; readonly filter: string }
  /** `node` no longer holds `filter` (its last local subscriber left). */
  | { readonly _tag: "FilterRemoved"; readonly node: string; readonly filter: string }
  /** `node` wrote its whole filter set again (after Redis lost it): read it anew. */
  | { readonly _tag: "FiltersReset"; readonly node: string }
  /** `node` stopped: a live node adopts its sessions and what was sent to it (`Adopted` follows). */
  | { readonly _tag: "NodeLeft"; readonly node: string }
  /** `by` adopted the stopped or dead `node`: its sessions are routed by `by` now, forget `node`'s filters. */
  | { readonly _tag: "Adopted"; readonly node: string; readonly by: string }
  /** `node` made `message` the retained message of `topic` (none: cleared it). */
  | { readonly _tag: "Retained"; readonly node: string; readonly topic: string; readonly message: Message | undefined }

const isString = (value: unknown): value is string => typeof value === "string"

const forwardedEntry = (forwarded: Forwarded): [string | null, ReadonlyArray<string>, string] => [
  forwarded.publisherId ?? null,
  forwarded.shared,
  SessionCodec.encodeMessage(forwarded.message)
]

/** Forwarded messages, in order, as one text: what one PUBLISH to a node's channel carries. */
export const encodeBatch = (batch: ReadonlyArray<Forwarded>): string => JSON.stringify(batch.map(forwardedEntry))

const decodeMessage = (text: unknown): Message | undefined => {
  if (!isString(text)) return undefined
  try {
    return SessionCodec.decodeMessageSync(text)
  } catch {
    return undefined
  }
}

const parse = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const decodeEntry = (value: unknown): Forwarded | undefined => {
  if (!Array.isArray(value) || value.length !== 3) return undefined
  const [publisherId, shared, messageText] = value as [unknown, unknown, unknown]
  if (publisherId !== null && !isString(publisherId)) return undefined
  if (!Array.isArray(shared) || !shared.every(isString)) return undefined
  const message = decodeMessage(messageText)
  return message === undefined ? undefined : { message, publisherId: publisherId ?? undefined, shared }
}

/** A binary batch held in a string, one character per byte (latin1), as Redis' MONITOR and redis-cli show it. */
const BINARY_AS_TEXT = String.fromCharCode(BinaryBatch.MAGIC)

/**
 * Forwarded messages from text, in order; `undefined` when the text is not a batch. An entry of
 * no known shape is left out (and counted in `skipped`), the others still delivered. A binary
 * batch (`BinaryBatch`) in a string of one character per byte is read too.
 */
export const decodeBatch = (text: string): { readonly forwarded: Array<Forwarded>; readonly skipped: number } | undefined => {
  if (text.startsWith(BINARY_AS_TEXT)) return BinaryBatch.decode(Buffer.from(text, "latin1"))
  const value = parse(text)
  if (!Array.isArray(value)) return undefined
  const forwarded: Array<Forwarded> = []
  for (const entry of value) {
    const decoded = decodeEntry(entry)
    if (decoded !== undefined) forwarded.push(decoded)
  }
  return { forwarded, skipped: value.length - forwarded.length }
}

/**
 * A batch as a stream entry holds it, in either form: bytes in the binary form, or the JSON text
 * of `encodeBatch` (what nodes of before that form write; as a string or its UTF-8 bytes).
 */
export const decodeBatchEntry = (value: string | Uint8Array): { readonly forwarded: Array<Forwarded>; readonly skipped: number } | undefined => {
  if (typeof value === "string") return decodeBatch(value)
  if (BinaryBatch.isBinary(value)) return BinaryBatch.decode(value)
  return decodeBatch(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("utf8"))
}

/** A control event as text. */
export const encodeControl = (control: Control): string => {
  switch (control._tag) {
    case "FilterAdded":
      return JSON.stringify(["+", control.node, control.filter])
    case "FilterRemoved":
      return JSON.stringify(["-", control.node, control.filter])
    case "FiltersReset":
      return JSON.stringify(["reset", control.node])
    case "NodeLeft":
      return JSON.stringify(["bye", control.node])
    case "Adopted":
      return JSON.stringify(["adopted", control.node, control.by])
    case "Retained":
      return JSON.stringify(["r", control.node, control.topic, control.message === undefined ? null : SessionCodec.encodeMessage(control.message)])
  }
}

/** A control event from text; `undefined` when it is not one. */
export const decodeControl = (text: string): Control | undefined => {
  const value = parse(text)
  if (!Array.isArray(value) || !isString(value[0]) || !isString(value[1])) return undefined
  const [kind, first, second] = value as [string, string, unknown]
  switch (kind) {
    case "+":
      return value.length === 3 && isString(second) ? { _tag: "FilterAdded", node: first, filter: second } : undefined
    case "-":
      return value.length === 3 && isString(second) ? { _tag: "FilterRemoved", node: first, filter: second } : undefined
    case "reset":
      return value.length === 2 ? { _tag: "FiltersReset", node: first } : undefined
    case "bye":
      return value.length === 2 ? { _tag: "NodeLeft", node: first } : undefined
    case "adopted":
      return value.length === 3 && isString(second) ? { _tag: "Adopted", node: first, by: second } : undefined
    case "r": {
      const text: unknown = value[3]
      if (value.length !== 4 || !isString(second)) return undefined
      if (text === null) return { _tag: "Retained", node: first, topic: second, message: undefined }
      const message = decodeMessage(text)
      return message === undefined ? undefined : { _tag: "Retained", node: first, topic: second, message }
    }
    default:
      return undefined
  }
}

/**
 * What nodes say about who owns a client id: a claim goes into the owner's stream (after the
 * messages sent to it before), the answer to the claimant's takeover channel.
 */
export type Takeover =
  /** `from` claims `clientId`: end its connection here, drop its subscriptions, hand it over, then answer `request`. */
  | { readonly _tag: "Claim"; readonly clientId: string; readonly from: string; readonly request: string }
  /**
   * The claim `request` for `clientId` is handled by `node`: it no longer has the client (the
   * claimant asks Redis who owns it now) and sends on what it gets for it until told `Settled`.
   */
  | { readonly _tag: "Released"; readonly request: string; readonly clientId: string; readonly node: string }

/** A takeover message as text. */
export const encodeTakeover = (takeover: Takeover): string =>
  takeover._tag === "Claim"
    ? JSON.stringify(["claim", takeover.clientId, takeover.from, takeover.request])
    : JSON.stringify(["released", takeover.request, takeover.clientId, takeover.node])

/** A takeover message from text; `undefined` when it is not one. */
export const decodeTakeover = (text: string): Takeover | undefined => {
  const value = parse(text)
  if (!Array.isArray(value) || !value.every(isString)) return undefined
  if (value[0] === "claim" && value.length === 4) return { _tag: "Claim", clientId: value[1], from: value[2], request: value[3] }
  if (value[0] === "released" && value.length === 4) return { _tag: "Released", request: value[1], clientId: value[2], node: value[3] }
  return undefined
}

/** A message for one client, made for it already (QoS, RETAIN, identifiers): what a node sends on for a client that moved away. */
export interface Targeted {
  readonly clientId: string
  readonly message: Message
}

/** A targeted message as text. */
export const encodeTargeted = (targeted: Targeted): string => JSON.stringify([targeted.clientId, SessionCodec.encodeMessage(targeted.message)])

/** A targeted message from text; `undefined` when it is not one. */
export const decodeTargeted = (text: string): Targeted | undefined => {
  const value = parse(text)
  if (!Array.isArray(value) || value.length !== 2 || !isString(value[0])) return undefined
  const message = decodeMessage(value[1])
  return message === undefined ? undefined : { clientId: value[0], message }
}

/** The claimant `node` has `clientId`'s subscriptions in its router now: the node it came from stops sending on. */
export interface Settled {
  readonly clientId: string
  readonly node: string
}

/** A settled notice as text. */
export const encodeSettled = (settled: Settled): string => JSON.stringify([settled.clientId, settled.node])

/** A settled notice from text; `undefined` when it is not one. */
export const decodeSettled = (text: string): Settled | undefined => {
  const value = parse(text)
  return Array.isArray(value) && value.length === 2 && value.every(isString) ? { clientId: value[0], node: value[1] } : undefined
}
