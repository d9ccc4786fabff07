/**
 * MQTT 5 property lists as the spec constrains them (§2.2.2.2): which properties each packet a
 * client sends may carry, which may appear once only, and the values that are a Protocol Error.
 * mqtt-packet decodes properties leniently (a repeated one silently overwrites), so the cold
 * packets' property lists are checked here against their bytes.
 */

/** Wire types of property values. */
type ValueType = "byte" | "u16" | "u32" | "varint" | "string" | "binary" | "pair"

const TYPES: ReadonlyArray<ValueType | undefined> = (() => {
  const types = new Array<ValueType | undefined>(0x2b).fill(undefined)
  const set = (type: ValueType, ...ids: Array<number>) => ids.forEach((id) => (types[id] = type))
  set("byte", 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2a)
  set("u16", 0x13, 0x21, 0x22, 0x23)
  set("u32", 0x02, 0x11, 0x18, 0x27)
  set("varint", 0x0b)
  set("string", 0x03, 0x08, 0x12, 0x15, 0x1a, 0x1c, 0x1f)
  set("binary", 0x09, 0x16)
  set("pair", 0x26)
  return types
})()

const USER_PROPERTY = 0x26

/** The property lists a client sends, and what each may hold (MQTT 5 §2.2.2.2, Table 2-4). */
export const ClientPropertySets = {
  connect: [0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16],
  will: [0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26],
  // a Subscription Identifier in a client's PUBLISH is a Protocol Error [MQTT-3.3.4-6]
  publish: [0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x03],
  ack: [0x1f, 0x26],
  subscribe: [0x0b, 0x26],
  unsubscribe: [0x26],
  disconnect: [0x11, 0x1f, 0x26, 0x1c],
  auth: [0x15, 0x16, 0x1f, 0x26]
} as const satisfies Record<string, ReadonlyArray<number>>

/** Which property list is being read. */
export type PropertySet = keyof typeof ClientPropertySets

const ALLOWED = new Map<PropertySet, ReadonlySet<number>>(
  Object.entries(ClientPropertySets).map(([name, ids]) => [name as PropertySet, new Set<number>(ids)])
)

/** A value the spec makes a Protocol Error, for the properties where one exists. */
const invalidValue = (id: number, value: number): string | undefined => {
  switch (id) {
    case 0x01:
    case 0x17:
    case 0x19:
      return value > 1 ? "must be 0 or 1" : undefined
    case 0x0b:
    case 0x21:
    case 0x27:
      return value === 0 ? "must not be 0" : undefined
    default:
      return undefined
  }
}

/** Where a property list ends, or why it breaks the rules. */
export type PropertyScan = { readonly end: number } | { readonly error: string }

/**
 * Reads the property list (length, then properties) at `offset` of `frame`, without building
 * anything: unknown or misplaced ids, a property that may appear once appearing twice, a value
 * that is a Protocol Error, and a length that overruns `limit` are reported.
 */
export const scanProperties = (frame: Uint8Array, offset: number, set: PropertySet, limit = frame.length): PropertyScan => {
  let i = offset
  const varint = (): number | undefined => {
    let value = 0
    let multiplier = 1
    for (let n = 0; n < 4; n++) {
      if (i >= limit) return undefined
      const byte = frame[i++]!
      value += (byte & 0x7f) * multiplier
      if ((byte & 0x80) === 0) return value
      multiplier *= 128
    }
    return undefined
  }
  const u16At = (at: number): number => (frame[at]! << 8) | frame[at + 1]!
  const length = varint()
  if (length === undefined) return { error: "malformed property length" }
  const end = i + length
  if (end > limit) return { error: "properties overrun the packet" }
  const allowed = ALLOWED.get(set)!
  const seen = new Set<number>()
  while (i < end) {
    const id = varint()
    if (id === undefined) return { error: "malformed property identifier" }
    const type = TYPES[id]
    if (type === undefined || !allowed.has(id)) return { error: `property 0x${id.toString(16)} not allowed in ${set} properties` }
    if (id !== USER_PROPERTY) {
      if (seen.has(id)) return { error: `property 0x${id.toString(16)} more than once` }
      seen.add(id)
    }
    let value = 0
    switch (type) {
      case "byte":
        if (i + 1 > end) return { error: "property overruns the list" }
        value = frame[i++]!
        break
      case "u16":
        if (i + 2 > end) return { error: "property overruns the list" }
        value = u16At(i)
        i += 2
        break
      case "u32":
        if (i + 4 > end) return { error: "property overruns the list" }
        value = frame[i]! * 0x1000000 + ((frame[i + 1]! << 16) | (frame[i + 2]! << 8) | frame[i + 3]!)
        i += 4
        break
      case "varint": {
        const read = varint()
        if (read === undefined || i > end) return { error: "malformed variable byte integer property" }
        value = read
        break
      }
      case "pair":
        if (i + 2 > end) return { error: "property overruns the list" }
        i += 2 + u16At(i)
        if (i + 2 > end) return { error: "property overruns the list" }
        i += 2 + u16At(i)
        if (i > end) return { error: "property overruns the list" }
        continue
      default:
        if (i + 2 > end) return { error: "property overruns the list" }
        i += 2 + u16At(i)
        if (i > end) return { error: "property overruns the list" }
        continue
    }
    const invalid = invalidValue(id, value)
    if (invalid !== undefined) return { error: `property 0x${id.toString(16)} ${invalid}` }
  }
  return { end }
}
