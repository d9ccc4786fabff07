import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import * as fc from "fast-check"
import { type Acl, type Action, check, covers, parse } from "../../src/auth/AclFile.ts"

const acl = (text: string): Acl => {
  const parsed = parse(text)
  if (Result.isFailure(parsed)) throw new Error(parsed.failure.message)
  return parsed.success
}

const may = (rules: Acl, action: Action, topic: string, clientId = "c1", username: string | undefined = undefined) =>
  check(rules, { action, topic, clientId, username })

describe("AclFile.parse", () => {
  it("reads anonymous topics, user sections and patterns; no access word is readwrite", () => {
    const parsed = acl([
      "# comment",
      "",
      "topic read public/#",
      "  # indented comment",
      "user alice",
      "topic alice/#",
      "topic deny alice/secret",
      "pattern write devices/%c/#",
      "user bob",
      "topic read with space/x"
    ].join("\n"))
    expect(parsed.anonymous).toEqual([{ access: "read", filter: "public/#" }])
    expect(parsed.users.get("alice")).toEqual([{ access: "readwrite", filter: "alice/#" }, { access: "deny", filter: "alice/secret" }])
    expect(parsed.users.get("bob")).toEqual([{ access: "read", filter: "with space/x" }])
    expect(parsed.patterns).toEqual([{ access: "write", filter: "devices/%c/#" }])
  })

  it.each([
    ["topic read public/#\nbogus line", 2, "unknown keyword \"bogus\""],
    ["\n\ntopic read a/#/b", 3, "\"a/#/b\" is not a valid topic filter"],
    ["user", 1, "`user` needs a user name"],
    ["topic", 1, "a rule needs a topic filter"],
    ["pattern readwrite x/%c+", 1, "not a valid topic filter"]
  ])("a bad line is an error naming its number: %j", (text, line, reason) => {
    const parsed = parse(text)
    expect(Result.isFailure(parsed)).toBe(true)
    if (Result.isFailure(parsed)) {
      expect(parsed.failure._tag).toBe("AclParseError")
      expect(parsed.failure.line).toBe(line)
      expect(parsed.failure.message).toContain(`line ${line}: `)
      expect(parsed.failure.message).toContain(reason)
    }
  })

  it("as in Mosquitto, a lone word after `topic` is the filter (readwrite), and a user name may hold spaces", () => {
    const parsed = acl("topic read\nuser john doe\ntopic write a b")
    expect(parsed.anonymous).toEqual([{ access: "readwrite", filter: "read" }])
    expect(parsed.users.get("john doe")).toEqual([{ access: "write", filter: "a b" }])
  })

  it("an empty file denies everything", () => {
    expect(may(acl(""), "publish", "a")).toBe(false)
    expect(may(acl(""), "subscribe", "#")).toBe(false)
  })
})

describe("AclFile.check", () => {
  const rules = acl([
    "topic read public/#",
    "topic write inbox",
    "user alice",
    "topic readwrite alice/#",
    "topic deny alice/secret",
    "topic read #",
    "topic deny test/nosubscribe",
    "pattern readwrite devices/%c/#",
    "pattern read users/%u/#"
  ].join("\n"))

  it("anonymous clients get the rules before the first user line, users only their own", () => {
    expect(may(rules, "receive", "public/news")).toBe(true)
    expect(may(rules, "publish", "public/news")).toBe(false)
    expect(may(rules, "publish", "inbox")).toBe(true)
    expect(may(rules, "receive", "inbox")).toBe(false)
    expect(may(rules, "publish", "inbox", "c1", "alice")).toBe(false)
    expect(may(rules, "publish", "alice/x", "c1", "alice")).toBe(true)
    expect(may(rules, "publish", "alice/x", "c1", "bob")).toBe(false)
  })

  it("deny wins over a broader grant", () => {
    expect(may(rules, "publish", "alice/secret", "c1", "alice")).toBe(false)
    expect(may(rules, "receive", "test/nosubscribe", "c1", "alice")).toBe(false)
    expect(may(rules, "subscribe", "test/nosubscribe", "c1", "alice")).toBe(false)
    expect(may(rules, "receive", "test/other", "c1", "alice")).toBe(true)
  })

  it("a subscription is allowed when a read grant covers its filter", () => {
    const r = acl("topic read a/#\ntopic read b/+")
    expect(may(r, "subscribe", "a/b/+")).toBe(true)
    expect(may(r, "subscribe", "a")).toBe(true)
    expect(may(r, "subscribe", "b/x")).toBe(true)
    expect(may(r, "subscribe", "b/#")).toBe(false)
    expect(may(r, "subscribe", "#")).toBe(false)
    expect(may(r, "subscribe", "$share/g/a/x")).toBe(true)
    expect(may(acl("topic write a/#"), "subscribe", "a/x")).toBe(false)
  })

  it("patterns substitute %c and %u; a %u pattern does not apply to anonymous clients", () => {
    expect(may(rules, "publish", "devices/c1/temp")).toBe(true)
    expect(may(rules, "publish", "devices/c2/temp")).toBe(false)
    // carol has no user section: only the patterns apply to her
    expect(may(rules, "receive", "users/carol/x", "c1", "carol")).toBe(true)
    expect(may(rules, "receive", "users/bob/x", "c1", "carol")).toBe(false)
    expect(may(rules, "receive", "users//x")).toBe(false)
  })

  it("a client id with a wildcard gets nothing from a %c pattern", () => {
    expect(may(rules, "publish", "devices/+/x", "+")).toBe(false)
    expect(may(rules, "subscribe", "devices/#", "#")).toBe(false)
  })

  it("covers: level by level, `$` topics only under an explicit first level", () => {
    expect(covers("#", "a/b")).toBe(true)
    expect(covers("#", "$SYS/x")).toBe(false)
    expect(covers("$SYS/#", "$SYS/x")).toBe(true)
    expect(covers("a/+", "a/#")).toBe(false)
    expect(covers("a/+/c", "a/+/c")).toBe(true)
    expect(covers("a/b", "a/+")).toBe(false)
    expect(covers("a/b", "a/b/c")).toBe(false)
  })
})

describe("AclFile properties", () => {
  const confined = acl("pattern readwrite devices/%c/#")
  // small alphabets, so generated topics often land inside a client's subtree and near its edges
  const level = fc.constantFrom("devices", "a", "b", "a/b", "", "+", "#", "x%c", "$SYS")
  const clientId = fc.constantFrom("a", "b", "a/b", "+", "#", "%u", "")
  const topicName = fc.array(fc.constantFrom("devices", "a", "b", "", "x"), { minLength: 1, maxLength: 5 }).map((l) => l.join("/"))
  const filter = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join("/"))
  const inside = (id: string, topic: string) => topic === `devices/${id}` || topic.startsWith(`devices/${id}/`)

  it("a client confined by `pattern readwrite devices/%c/#` can never publish, receive or subscribe outside its own subtree", () => {
    fc.assert(fc.property(clientId, fc.option(fc.string(), { nil: undefined }), fc.constantFrom<Action>("publish", "receive"), topicName, (id, username, action, topic) =>
      !check(confined, { clientId: id, username, action, topic }) || inside(id, topic)
    ), { numRuns: 2000 })
    fc.assert(fc.property(clientId, filter, (id, f) =>
      !check(confined, { clientId: id, username: undefined, action: "subscribe", topic: f }) || inside(id, f)
    ), { numRuns: 2000 })
  })

  it("and it may always publish and receive inside it", () => {
    fc.assert(fc.property(fc.constantFrom("a", "b", "dev-1"), fc.array(fc.constantFrom("x", "y", ""), { maxLength: 3 }), (id, rest) => {
      const topic = ["devices", id, ...rest].join("/")
      return check(confined, { clientId: id, username: undefined, action: "publish", topic }) &&
        check(confined, { clientId: id, username: undefined, action: "receive", topic })
    }))
  })

  it("a deny rule always wins: adding `topic deny F` never allows anything more", () => {
    const base = "topic readwrite #\ntopic read a/+\npattern readwrite devices/%c/#"
    fc.assert(fc.property(filter, fc.constantFrom<Action>("publish", "receive", "subscribe"), topicName, (denied, action, topic) => {
      const withDeny = parse(`${base}\ntopic deny ${denied}`)
      if (Result.isFailure(withDeny)) return true // an invalid generated filter
      const request = { clientId: "a", username: undefined, action, topic }
      return !check(withDeny.success, request) || check(acl(base), request)
    }), { numRuns: 1000 })
  })
})
