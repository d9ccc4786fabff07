/**
 * Entries of a node's Redis stream as XREAD and XRANGE answer them, read without throwing: the
 * reply's shape differs between RESP2 (nested arrays) and RESP3 (a map of streams), and anything
 * of no known shape is no entry. A value read as bytes (a binary batch) stays a `Buffer`; field
 * names and ids are text.
 *
 * @module
 */

/** One stream entry: its id (for XDEL) and its fields. */
export interface StreamEntry {
  readonly id: string
  readonly fields: ReadonlyMap<string, string | Buffer>
}

/** A field's value: bytes as they came, anything else as text. */
const valueOf = (value: unknown): string | Buffer => (Buffer.isBuffer(value) ? value : String(value))

/** A field's value as text (a field read as bytes is UTF-8); `undefined` when there is none. */
export const text = (value: string | Buffer | undefined): string | undefined =>
  value === undefined || typeof value === "string" ? value : value.toString("utf8")

const fieldsOf = (value: unknown): Map<string, string | Buffer> => {
  const fields = new Map<string, string | Buffer>()
  if (Array.isArray(value)) {
    for (let i = 0; i + 1 < value.length; i += 2) fields.set(String(value[i]), valueOf(value[i + 1]))
  } else if (value instanceof Map) {
    for (const [field, text] of value) fields.set(String(field), valueOf(text))
  } else if (typeof value === "object" && value !== null) {
    for (const [field, text] of Object.entries(value)) fields.set(field, valueOf(text))
  }
  return fields
}

/** Entries from an XRANGE reply (`[[id, [field, value, …]], …]`, or `{ id, message }` objects). */
export const fromRange = (reply: unknown): Array<StreamEntry> => {
  if (!Array.isArray(reply)) return []
  const entries: Array<StreamEntry> = []
  for (const item of reply) {
    if (Array.isArray(item) && item.length === 2 && (typeof item[0] === "string" || Buffer.isBuffer(item[0]))) {
      entries.push({ id: String(item[0]), fields: fieldsOf(item[1]) })
    } else if (typeof item === "object" && item !== null && "id" in item) {
      const { id, message } = item as { id: unknown; message: unknown }
      entries.push({ id: String(id), fields: fieldsOf(message) })
    }
  }
  return entries
}

/** Entries from an XREAD reply of one stream (`[[key, entries]]`, a map key → entries, or none at a timeout). */
export const fromRead = (reply: unknown): Array<StreamEntry> => {
  if (reply === null || reply === undefined) return []
  if (Array.isArray(reply)) {
    const entries: Array<StreamEntry> = []
    for (const stream of reply) {
      if (Array.isArray(stream) && stream.length === 2) entries.push(...fromRange(stream[1]))
      else if (typeof stream === "object" && stream !== null && "messages" in stream) {
        entries.push(...fromRange((stream as { messages: unknown }).messages))
      }
    }
    return entries
  }
  const streams = reply instanceof Map ? Array.from(reply.values()) : typeof reply === "object" ? Object.values(reply) : []
  return streams.flatMap(fromRange)
}
