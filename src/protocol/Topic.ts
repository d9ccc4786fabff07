/**
 * MQTT 3.1.1 / 5.0 topic name and topic filter rules.
 *
 * These functions sit on the publish hot path, so they walk strings by char
 * code instead of splitting into arrays.
 *
 * @module
 */

const SLASH = 0x2f // "/"
const PLUS = 0x2b // "+"
const HASH = 0x23 // "#"
const DOLLAR = 0x24 // "$"
const NUL = 0x00

/** Longest encoded length a UTF-8 string field can have in an MQTT packet. */
const MAX_UTF8_BYTES = 65535

/**
 * UTF-8 byte length of `s`, or -1 if `s` holds a lone surrogate (which has no
 * well-formed UTF-8 encoding, so the spec forbids it in any MQTT string).
 */
const utf8Length = (s: string): number => {
  const len = s.length
  let bytes = 0
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c <= 0xdbff) {
      const next = i + 1 < len ? s.charCodeAt(i + 1) : 0
      if (next < 0xdc00 || next > 0xdfff) return -1
      bytes += 4
      i++
    } else if (c >= 0xdc00 && c <= 0xdfff) return -1
    else bytes += 3
  }
  return bytes
}

/**
 * Length and encoding checks shared by names and filters: non-empty, at most
 * 65535 UTF-8 bytes, well-formed UTF-16 (hence encodable as UTF-8).
 */
const isEncodable = (s: string): boolean => {
  if (s.length === 0) return false
  const bytes = utf8Length(s)
  return bytes !== -1 && bytes <= MAX_UTF8_BYTES
}

/**
 * Whether `name` is a valid topic name for PUBLISH: non-empty, at most 65535
 * UTF-8 bytes, well-formed UTF-8, and free of `+`, `#` and U+0000.
 * Empty levels (`/`, `a//b`) are allowed.
 */
export const isValidTopicName = (name: string): boolean => {
  if (!isEncodable(name)) return false
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c === PLUS || c === HASH || c === NUL) return false
  }
  return true
}

/**
 * Wildcard placement and U+0000 check for `filter` from index `start`, which
 * must be at the beginning of a level. Split out so a `$share/group/` prefix
 * can later be validated separately and the remainder checked here.
 */
const isValidFilterFrom = (filter: string, start: number): boolean => {
  const len = filter.length
  for (let i = start; i < len; i++) {
    const c = filter.charCodeAt(i)
    if (c === NUL) return false
    if (c === PLUS || c === HASH) {
      const atLevelStart = i === start || filter.charCodeAt(i - 1) === SLASH
      if (!atLevelStart) return false
      if (c === HASH) return i === len - 1
      if (i + 1 < len && filter.charCodeAt(i + 1) !== SLASH) return false
    }
  }
  return true
}

const SHARE_PREFIX = "$share/"

/** A shared subscription filter `$share/{group}/{filter}`, split. */
export interface SharedFilter {
  readonly group: string
  readonly filter: string
}

/**
 * Splits a shared subscription filter; undefined for an ordinary filter. The group must be
 * non-empty and contain no `/`, `+` or `#` (the `/` is excluded by construction).
 */
export const parseSharedFilter = (filter: string): SharedFilter | undefined => {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined
  const slash = filter.indexOf("/", SHARE_PREFIX.length)
  if (slash < 0) return { group: filter.slice(SHARE_PREFIX.length), filter: "" }
  return { group: filter.slice(SHARE_PREFIX.length, slash), filter: filter.slice(slash + 1) }
}

/**
 * Whether `filter` is a valid topic filter for SUBSCRIBE / UNSUBSCRIBE:
 * non-empty, at most 65535 UTF-8 bytes, well-formed UTF-8, no U+0000, `+`
 * only as a whole level, `#` only as a whole level and only as the last one.
 * A shared subscription `$share/{group}/{filter}` needs a group without
 * wildcards and a valid filter after it.
 */
export const isValidTopicFilter = (filter: string): boolean => {
  if (!isEncodable(filter)) return false
  const shared = parseSharedFilter(filter)
  if (shared === undefined) return isValidFilterFrom(filter, 0)
  return shared.group.length > 0 && !/[+#]/.test(shared.group) && shared.filter.length > 0 &&
    isValidFilterFrom(filter, SHARE_PREFIX.length + shared.group.length + 1)
}

/**
 * Whether topic name `topic` matches topic filter `filter` under MQTT rules:
 * `+` matches exactly one level (possibly empty), `#` matches its parent level
 * and any number of child levels, and a topic starting with `$` is never
 * matched by a filter whose first level is a wildcard.
 *
 * Both arguments are assumed valid (see {@link isValidTopicName} and
 * {@link isValidTopicFilter}); invalid input gives an unspecified answer.
 */
export const matches = (filter: string, topic: string): boolean => {
  const fl = filter.length
  const tl = topic.length
  // $-topics (e.g. $SYS) are server-internal: a leading wildcard must not
  // match them, only an explicit "$..." first level can.
  if (topic.charCodeAt(0) === DOLLAR) {
    const f0 = filter.charCodeAt(0)
    if (f0 === PLUS || f0 === HASH) return false
  }
  let fi = 0
  let ti = 0
  // Invariant at the top of each iteration: fi and ti are each at the start
  // of a level.
  for (;;) {
    const fc = fi < fl ? filter.charCodeAt(fi) : -1
    if (fc === HASH) return true
    if (fc === PLUS) {
      // Consume one whole topic level, whatever (and however long) it is.
      fi++
      while (ti < tl && topic.charCodeAt(ti) !== SLASH) ti++
    } else {
      // Literal level: compare char by char up to the filter's level end.
      while (fi < fl) {
        const c = filter.charCodeAt(fi)
        if (c === SLASH) break
        if (ti >= tl || topic.charCodeAt(ti) !== c) return false
        fi++
        ti++
      }
      // The topic level must end where the filter level ends.
      if (ti < tl && topic.charCodeAt(ti) !== SLASH) return false
    }
    // Now fi is at "/" or end of filter, ti at "/" or end of topic.
    if (fi === fl) return ti === tl
    if (ti === tl) {
      // Topic exhausted but filter has more levels: only a trailing "/#"
      // matches, because "#" also matches the parent level.
      return fi + 2 === fl && filter.charCodeAt(fi + 1) === HASH
    }
    fi++
    ti++
  }
}

/**
 * Whether `topic` is in the broker's `$SYS` tree (`$SYS` itself or
 * `$SYS/...`), where clients may not publish.
 */
export const isSystemTopic = (topic: string): boolean =>
  topic.startsWith("$SYS") && (topic.length === 4 || topic.charCodeAt(4) === SLASH)
