/**
 * The operator's bounds on topic names and filters (`maxTopicLength`, `maxTopicLevels`), on top of
 * the protocol's own 65535-byte string limit. Deep or long topics cost the subscription index and
 * every match walk; these keep one client from making them arbitrarily expensive.
 */

/**
 * Why `topic` is past the limits, or `undefined` when it is within them. `maxLength` is in UTF-8
 * bytes; `maxLevels` counts `/`-separated levels, 0 for no limit. Written so that an ordinary topic
 * under the defaults costs a comparison or two: bytes are only counted when the UTF-16 length
 * could exceed the limit (a code unit is at most 3 UTF-8 bytes), levels only when the topic has
 * at least as many characters as the limit allows levels (n levels need n - 1 slashes).
 */
export const exceeded = (topic: string, maxLength: number, maxLevels: number): string | undefined => {
  if (topic.length * 3 > maxLength) {
    const bytes = Buffer.byteLength(topic, "utf8")
    if (bytes > maxLength) return `${bytes} bytes, over --max-topic-length ${maxLength}`
  }
  if (maxLevels > 0 && topic.length >= maxLevels) {
    let levels = 1
    for (let index = topic.indexOf("/"); index !== -1; index = topic.indexOf("/", index + 1)) levels++
    if (levels > maxLevels) return `${levels} levels, over --max-topic-levels ${maxLevels}`
  }
  return undefined
}
