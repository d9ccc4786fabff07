/**
 * Mosquitto's `acl_file` format, parsed and checked: pure functions, no files and no effects
 * (`AclAuthorizer` reads the file and serves the result as an `Authorizer`).
 *
 * ```
 * # rules before the first `user` line apply to anonymous clients
 * topic read public/#
 * user alice
 * topic readwrite alice/#
 * topic deny alice/secret
 * # every client, %c = its client id, %u = its user name
 * pattern readwrite devices/%c/#
 * ```
 *
 * - `topic [read|write|readwrite|deny] FILTER`: no access word means readwrite; FILTER is the
 *   rest of the line (it may contain spaces, as in Mosquitto).
 * - `user NAME`: the `topic` lines after it apply to the client authenticated as NAME.
 * - `pattern [read|write|readwrite|deny] FILTER`: applies to every client, `%c` and `%u`
 *   substituted (a `%u` pattern does not apply to an anonymous client).
 * - A matching `deny` wins over any grant; with no matching grant the answer is no.
 * - `#` as the first non-blank character starts a comment; blank lines are skipped.
 */
import { Result, Schema } from "effect"
import { isValidTopicFilter, matches, parseSharedFilter } from "../protocol/Topic.ts"

/** What a rule grants (or, for `deny`, takes away). */
export type Access = "read" | "write" | "readwrite" | "deny"

/** One `topic` or `pattern` line. */
export interface Rule {
  readonly access: Access
  /** A topic filter; for a pattern it may hold `%c` / `%u`. */
  readonly filter: string
}

/** A parsed ACL file. */
export interface Acl {
  /** `topic` lines before the first `user` line: for clients without a user name. */
  readonly anonymous: ReadonlyArray<Rule>
  /** `topic` lines by the `user` line they follow. */
  readonly users: ReadonlyMap<string, ReadonlyArray<Rule>>
  /** `pattern` lines, wherever they are: for every client. */
  readonly patterns: ReadonlyArray<Rule>
}

/** A line of an ACL file that is not one of the forms above. */
export class AclParseError extends Schema.TaggedError<AclParseError>()("AclParseError", {
  /** 1-based line number. */
  line: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `line ${this.line}: ${this.reason}`
  }
}

const ACCESS: ReadonlySet<string> = new Set(["read", "write", "readwrite", "deny"])

/** `topic`/`pattern` arguments: an optional access word, then the filter (the rest of the line). */
const parseRule = (rest: string, line: number, pattern: boolean): Rule | AclParseError => {
  const space = rest.search(/\s/)
  const first = space < 0 ? rest : rest.slice(0, space)
  const [access, filter] = ACCESS.has(first) && space >= 0
    ? [first as Access, rest.slice(space).trim()]
    : ["readwrite" as const, rest]
  if (filter.length === 0) return new AclParseError({ line, reason: "a rule needs a topic filter" })
  // a pattern is checked with placeholders filled by a plain level, as a client id would be
  const checked = pattern ? filter.replaceAll("%c", "c").replaceAll("%u", "u") : filter
  if (!isValidTopicFilter(checked) || parseSharedFilter(checked) !== undefined) {
    return new AclParseError({ line, reason: `${JSON.stringify(filter)} is not a valid topic filter` })
  }
  return { access, filter }
}

/** Parses the text of an ACL file; the first bad line is the error. */
export const parse = (text: string): Result.Result<Acl, AclParseError> => {
  const anonymous: Array<Rule> = []
  const users = new Map<string, Array<Rule>>()
  const patterns: Array<Rule> = []
  let current = anonymous
  const lines = text.split(/\r?\n/)
  for (let index = 0; index < lines.length; index++) {
    const line = index + 1
    const trimmed = lines[index]!.trim()
    if (trimmed === "" || trimmed.startsWith("#")) continue
    const space = trimmed.search(/\s/)
    const keyword = space < 0 ? trimmed : trimmed.slice(0, space)
    const rest = space < 0 ? "" : trimmed.slice(space).trim()
    switch (keyword) {
      case "user": {
        if (rest === "") return Result.fail(new AclParseError({ line, reason: "`user` needs a user name" }))
        const rules = users.get(rest) ?? []
        users.set(rest, rules)
        current = rules
        break
      }
      case "topic":
      case "pattern": {
        const rule = parseRule(rest, line, keyword === "pattern")
        if (rule instanceof AclParseError) return Result.fail(rule)
        ;(keyword === "topic" ? current : patterns).push(rule)
        break
      }
      default:
        return Result.fail(
          new AclParseError({ line, reason: `unknown keyword ${JSON.stringify(keyword)} (expected user, topic or pattern)` })
        )
    }
  }
  return Result.succeed({ anonymous, users, patterns })
}

/** What a client asks to do. */
export type Action = "publish" | "subscribe" | "receive"

/** One authorization question: may this client do `action` on `topic`? */
export interface Request {
  /** The user name it authenticated as; undefined: anonymous. */
  readonly username: string | undefined
  readonly clientId: string
  readonly action: Action
  /** A topic name (publish, receive) or a topic filter (subscribe). */
  readonly topic: string
}

/**
 * Whether every topic `filter` matches is also matched by `granted`, level by level: the
 * question for a subscription, as Mosquitto asks it (`a/#` granted allows subscribing to
 * `a/b/+`, while `a/+` granted does not allow `a/#`).
 */
export const covers = (granted: string, filter: string): boolean => {
  const g = granted.split("/")
  const f = filter.split("/")
  // a leading wildcard never matches a `$` topic, so it cannot cover a `$` filter
  if (f[0]!.startsWith("$") && (g[0] === "+" || g[0] === "#")) return false
  for (let i = 0; i < g.length; i++) {
    if (g[i] === "#") return true
    if (i >= f.length) return false
    if (f[i] === "#") return false
    if (g[i] !== "+" && g[i] !== f[i]) return false
  }
  // `granted` is used up: the filter must end here too (any longer one matches more)
  return g.length === f.length
}

/** Whether client id / user name `value` is safe to put into a pattern: a wildcard in it would widen the rule. */
const substitutable = (value: string): boolean => !value.includes("+") && !value.includes("#")

const grants = (access: Access, action: Action): boolean =>
  access === "readwrite" || (access === "write" ? action === "publish" : access === "read" && action !== "publish")

/**
 * Whether `acl` allows `request`: no matching `deny` and at least one matching grant. A
 * subscription is checked as a filter (`covers`); a deny rule only inside it (e.g. denying
 * `a/secret` while `a/#` is subscribed) is then enforced on each message as `receive`.
 */
export const check = (acl: Acl, request: Request): boolean => {
  const { action, clientId, topic, username } = request
  const subscription = action === "subscribe" ? (parseSharedFilter(topic)?.filter ?? topic) : topic
  const applies = (filter: string) => action === "subscribe" ? covers(filter, subscription) : matches(filter, topic)
  let granted = false
  const visit = (rule: Rule, filter: string): boolean => {
    if (!applies(filter)) return true
    if (rule.access === "deny") return false
    if (grants(rule.access, action)) granted = true
    return true
  }
  const own = username === undefined ? acl.anonymous : acl.users.get(username) ?? []
  for (const rule of own) if (!visit(rule, rule.filter)) return false
  for (const rule of acl.patterns) {
    const usesUser = rule.filter.includes("%u")
    if (usesUser && username === undefined) continue
    const usesClient = rule.filter.includes("%c")
    // as Mosquitto: a client id or user name with a wildcard is refused outright where a pattern uses it
    if ((usesClient && !substitutable(clientId)) || (usesUser && !substitutable(username!))) return false
    // one pass, so a client id holding "%u" is not substituted again
    const filter = usesClient || usesUser
      ? rule.filter.replace(/%[cu]/g, (placeholder) => placeholder === "%c" ? clientId : username!)
      : rule.filter
    if (!visit(rule, filter)) return false
  }
  return granted
}
