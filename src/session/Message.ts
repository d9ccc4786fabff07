/**
 * The application message as the broker routes it: independent of any packet id,
 * so one value can be queued for many sessions and encoded once per delivery QoS.
 */
export type QoS = 0 | 1 | 2

/** An application message (what a PUBLISH carries, minus the packet id and DUP flag). */
export interface Message {
  readonly topic: string
  readonly payload: Uint8Array
  readonly qos: QoS
  readonly retain: boolean
}

/** The same message at a different QoS (delivery QoS = min(publish QoS, granted QoS)). */
export const withQos = (message: Message, qos: QoS): Message =>
  message.qos === qos ? message : { ...message, qos }

/** The same message with its RETAIN flag set or cleared (RETAIN=1 only on subscribe-time delivery). */
export const withRetain = (message: Message, retain: boolean): Message =>
  message.retain === retain ? message : { ...message, retain }

/** The lower of two QoS levels. */
export const minQos = (a: QoS, b: QoS): QoS => (a < b ? a : b)
