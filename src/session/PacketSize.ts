/**
 * The size of a PUBLISH before it is encoded, so the session layer can tell (purely) whether a
 * message fits a client's MQTT 5 Maximum Packet Size. It counts the properties the broker would
 * send, including a Message Expiry Interval, and no topic alias: an upper bound, so "fits" never
 * lets an oversized packet through.
 */
import type { Message } from "./Message.ts"

const utf8 = (text: string): number => Buffer.byteLength(text, "utf8")

/** Bytes of a Variable Byte Integer. */
export const varintSize = (value: number): number =>
  value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4

const propertiesSize = (message: Message): number => {
  let size = 0
  const properties = message.properties
  if (properties !== undefined) {
    if (properties.payloadFormatIndicator !== undefined) size += 2
    if (properties.contentType !== undefined) size += 3 + utf8(properties.contentType)
    if (properties.responseTopic !== undefined) size += 3 + utf8(properties.responseTopic)
    if (properties.correlationData !== undefined) size += 3 + properties.correlationData.length
    for (const [name, value] of properties.userProperties ?? []) size += 5 + utf8(name) + utf8(value)
  }
  if (message.expiresAt !== undefined) size += 5
  for (const id of message.subscriptionIds ?? []) size += 1 + varintSize(id)
  return size
}

/** The whole MQTT 5 PUBLISH packet for `message` at its QoS, in bytes. */
export const publishSize = (message: Message): number => {
  const properties = propertiesSize(message)
  const remaining = 2 + utf8(message.topic) + (message.qos > 0 ? 2 : 0) + varintSize(properties) + properties +
    message.payload.length
  return 1 + varintSize(remaining) + remaining
}
