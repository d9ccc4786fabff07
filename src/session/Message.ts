/**
 * The application message as the broker routes it: independent of any packet id,
 * so one value can be queued for many sessions and encoded once per delivery QoS.
 */
export type QoS = 0 | 1 | 2

/** One MQTT 5 user property: a name and a value (names may repeat; order matters). */
export type UserProperty = readonly [name: string, value: string]

/** The MQTT 5 PUBLISH properties the broker forwards unchanged. */
export interface PublishProperties {
  readonly payloadFormatIndicator?: boolean
  readonly contentType?: string
  readonly responseTopic?: string
  readonly correlationData?: Uint8Array
  /** In wire order, repeated names included. */
  readonly userProperties?: ReadonlyArray<UserProperty>
}

/** An application message (what a PUBLISH carries, minus the packet id and DUP flag). */
export interface Message {
  readonly topic: string
  readonly payload: Uint8Array
  readonly qos: QoS
  readonly retain: boolean
  /** MQTT 5 properties forwarded to subscribers (3.1.1 subscribers never see them). */
  readonly properties?: PublishProperties | undefined
  /** When the message expires (epoch ms, from MQTT 5 Message Expiry Interval); undefined: never. */
  readonly expiresAt?: number | undefined
  /** MQTT 5 subscription identifiers of the subscriptions this delivery matched. */
  readonly subscriptionIds?: ReadonlyArray<number> | undefined
}

/** Whether the message has expired at `now` (epoch ms). */
export const isExpired = (message: Message, now: number): boolean =>
  message.expiresAt !== undefined && message.expiresAt <= now

/** The same message at a different QoS (delivery QoS = min(publish QoS, granted QoS)). */
export const withQos = (message: Message, qos: QoS): Message =>
  message.qos === qos ? message : { ...message, qos }

/** The same message with its RETAIN flag set or cleared (RETAIN=1 only on subscribe-time delivery). */
export const withRetain = (message: Message, retain: boolean): Message =>
  message.retain === retain ? message : { ...message, retain }

/** The lower of two QoS levels. */
export const minQos = (a: QoS, b: QoS): QoS => (a < b ? a : b)
