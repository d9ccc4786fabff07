/**
 * What MQTT says a session is, as immutable data. Every field that must survive a
 * reconnect of a persistent session lives here, and nowhere else: the broker keeps
 * no shadow copy, so what the `SessionStateProvider` holds is the truth.
 */
import type { Message, QoS } from "./Message.ts"
import { MessageQueue } from "./MessageQueue.ts"

/** A granted subscription and its MQTT 5 options (3.1.1 subscriptions use the defaults). */
export interface Subscription {
  readonly qos: QoS
  /** Do not deliver messages this client published itself. */
  readonly noLocal?: boolean | undefined
  /** Keep the RETAIN flag on messages forwarded live. */
  readonly retainAsPublished?: boolean | undefined
  /** 0: send retained messages on subscribe, 1: only for a new subscription, 2: never. */
  readonly retainHandling?: 0 | 1 | 2 | undefined
  /** Subscription Identifier carried on matching deliveries. */
  readonly identifier?: number | undefined
}

/**
 * Where an outbound QoS>0 message is in its handshake:
 * - `puback`: QoS 1 PUBLISH sent, waiting for PUBACK
 * - `pubrec`: QoS 2 PUBLISH sent, waiting for PUBREC
 * - `pubcomp`: PUBREL sent, waiting for PUBCOMP
 */
export type InflightStage = "puback" | "pubrec" | "pubcomp"

/** An outbound message holding a packet id until its handshake completes. */
export interface InflightMessage {
  readonly packetId: number
  readonly message: Message
  readonly stage: InflightStage
  /**
   * Sent on an earlier connection, not yet re-sent on this one because the client's window is
   * smaller now (MQTT 5 Receive Maximum): it keeps its packet id and goes out again with DUP=1,
   * before anything new, as the window opens. Such entries do not use the window.
   */
  readonly awaitingResend?: true | undefined
}

/** Session expiry meaning "never" (MQTT 5 0xFFFFFFFF; the 3.1.1 clean=0 default). */
export const EXPIRY_NEVER = 0xffffffff

/** The largest packet id; ids cycle through 1..65535. */
export const MAX_PACKET_ID = 0xffff

/** The state of one client's session. */
export interface SessionState {
  readonly clientId: string
  /** 3.1.1 clean session / MQTT 5 clean start as last connected with (the session's end is `expiryInterval`'s call). */
  readonly clean: boolean
  /** Seconds the session outlives its connection (0: ends with it; EXPIRY_NEVER: never expires). */
  readonly expiryInterval: number
  /** Topic filter → granted subscription. */
  readonly subscriptions: ReadonlyMap<string, Subscription>
  /** Outbound QoS 1/2 messages awaiting acknowledgement, in the order they were first sent. */
  readonly inflight: ReadonlyArray<InflightMessage>
  /** Messages waiting while the client is offline or its in-flight window is full, oldest first. */
  readonly queue: MessageQueue
  /** How many queued messages were dropped because the queue was full (drop-oldest policy). */
  readonly dropped: number
  /** Inbound QoS 2 packet ids received (PUBREC sent) and awaiting PUBREL: the exactly-once guard. */
  readonly awaitingPubrel: ReadonlyArray<number>
  /** Where the search for the next free packet id starts. */
  readonly nextPacketId: number
  /** The will message, published if the connection ends without DISCONNECT. */
  readonly will: Message | undefined
  /** MQTT 5 Will Delay Interval in seconds (0: published as the connection ends). */
  readonly willDelayInterval: number
  /** While offline: when the delayed will is due (epoch ms). */
  readonly willAt: number | undefined
  /** The outbound in-flight window (MQTT 5 Receive Maximum; a broker default for 3.1.1). */
  readonly receiveMaximum: number
  /** The largest packet the client accepts (MQTT 5 Maximum Packet Size); larger messages are not sent to it. */
  readonly maximumPacketSize: number | undefined
  /** When the last connection ended (epoch ms), undefined while connected; drives expiry. */
  readonly disconnectedAt: number | undefined
}

/** What a CONNECT asks of the session layer. */
export interface ConnectRequest {
  readonly clientId: string
  readonly clean: boolean
  readonly expiryInterval: number
  readonly receiveMaximum: number
  readonly will: Message | undefined
  readonly willDelayInterval?: number | undefined
  readonly maximumPacketSize?: number | undefined
}

/** A new, empty session for a CONNECT. */
export const make = (request: ConnectRequest): SessionState => ({
  clientId: request.clientId,
  clean: request.clean,
  expiryInterval: request.expiryInterval,
  subscriptions: new Map(),
  inflight: [],
  queue: MessageQueue.empty,
  dropped: 0,
  awaitingPubrel: [],
  nextPacketId: 1,
  will: request.will,
  willDelayInterval: request.willDelayInterval ?? 0,
  willAt: undefined,
  receiveMaximum: request.receiveMaximum,
  maximumPacketSize: request.maximumPacketSize,
  disconnectedAt: undefined
})

/** When an offline session ends (epoch ms); undefined while connected or if it never expires. */
export const expiresAt = (state: SessionState): number | undefined =>
  state.disconnectedAt === undefined || state.expiryInterval === EXPIRY_NEVER
    ? undefined
    : state.disconnectedAt + state.expiryInterval * 1000

/** The next time something is due for an offline session (its delayed will or its end), if ever. */
export const nextDeadline = (state: SessionState): number | undefined => {
  const end = expiresAt(state)
  if (state.willAt === undefined) return end
  return end === undefined ? state.willAt : Math.min(end, state.willAt)
}
