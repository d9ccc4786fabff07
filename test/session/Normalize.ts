/**
 * Plain, comparable views of sessions and packets: providers may hand back copies (a serializing
 * provider returns new Maps, Buffers for Uint8Arrays, drops undefined fields), so the suite
 * compares these views rather than object identity.
 */
import type { Message } from "../../src/session/Message.ts"
import type { SessionState } from "../../src/session/SessionState.ts"
import type { Outgoing } from "../../src/session/Transitions.ts"
import { type MMessage, showMessage, START } from "./Model.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const toMessage = (m: MMessage): Message => ({
  topic: m.topic,
  payload: encoder.encode(m.payload),
  qos: m.qos,
  retain: m.retain,
  ...(m.expiresAt === undefined ? {} : { expiresAt: m.expiresAt })
})

export const toModelMessage = (m: Message): MMessage => ({
  topic: m.topic,
  payload: decoder.decode(m.payload),
  qos: m.qos,
  retain: m.retain,
  expiresAt: m.expiresAt
})

export const normalizeMessage = (m: Message) => ({
  topic: m.topic,
  payload: Array.from(m.payload),
  qos: m.qos,
  retain: m.retain,
  expiresAt: m.expiresAt ?? null
})

export const normalizeState = (s: SessionState | undefined) =>
  s === undefined ? null : {
    clientId: s.clientId,
    clean: s.clean,
    expiryInterval: s.expiryInterval,
    subscriptions: [...s.subscriptions]
      .map(([filter, subscription]) => [filter, { ...subscription }] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    inflight: s.inflight.map((e) => ({
      packetId: e.packetId,
      stage: e.stage,
      message: normalizeMessage(e.message),
      awaitingResend: e.awaitingResend === true
    })),
    queue: s.queue.toArray().map(normalizeMessage),
    dropped: s.dropped,
    awaitingPubrel: [...s.awaitingPubrel],
    nextPacketId: s.nextPacketId,
    will: s.will === undefined ? null : normalizeMessage(s.will),
    willDelayInterval: s.willDelayInterval,
    willAt: s.willAt ?? null,
    receiveMaximum: s.receiveMaximum,
    maximumPacketSize: s.maximumPacketSize ?? null,
    disconnectedAt: s.disconnectedAt ?? null
  }

export const normalizeOutgoing = (o: Outgoing) =>
  o._tag === "Pubrel"
    ? { _tag: o._tag, packetId: o.packetId }
    : { _tag: o._tag, message: normalizeMessage(o.message), packetId: o.packetId ?? null, dup: o.dup }

export const showOutgoing = (o: Outgoing): string =>
  o._tag === "Pubrel"
    ? `PUBREL(${o.packetId})`
    : `PUBLISH(${showMessage(toModelMessage(o.message))}, id=${String(o.packetId)}${o.dup ? ", dup" : ""})`

export const showOutgoingList = (os: ReadonlyArray<Outgoing>): string => `[${os.map(showOutgoing).join(", ")}]`

/** A short readable form of a stored session for failure messages. */
export const showState = (s: SessionState | undefined): string => {
  if (s === undefined) return "<none>"
  const inflight = s.inflight
    .map((e) => `${e.packetId}:${toModelMessage(e.message).payload}/${e.stage}${e.awaitingResend === true ? "/held-back" : ""}`)
    .join(" ")
  const queue = s.queue.toArray().map((m) => toModelMessage(m).payload).join(" ")
  const subs = [...s.subscriptions].map(([f, sub]) => `${f}:${sub.qos}`).join(" ")
  return `{clean=${s.clean ? 1 : 0} expiry=${s.expiryInterval} rm=${s.receiveMaximum} subs=[${subs}] inflight=[${inflight}] ` +
    `queue=[${queue}] dropped=${s.dropped} awaitingPubrel=[${s.awaitingPubrel.join(" ")}] next=${s.nextPacketId} ` +
    `will=${s.will === undefined ? "-" : showMessage(toModelMessage(s.will))}${s.willDelayInterval > 0 ? ` delay=${s.willDelayInterval}s` : ""}` +
    `${s.willAt === undefined ? "" : ` willAt=${s.willAt - START}`}${s.maximumPacketSize === undefined ? "" : ` maxPacket=${s.maximumPacketSize}`}` +
    ` disconnectedAt=${s.disconnectedAt === undefined ? "-" : s.disconnectedAt - START}}`
}
