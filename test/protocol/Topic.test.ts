import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { isSystemTopic, isValidTopicFilter, isValidTopicName, matches } from "../../src/protocol/Topic.ts"

// Straightforward level-splitting reference definitions, used to cross-check
// the char-walking implementations on random input.
const refValidFilter = (filter: string): boolean => {
  if (filter.length === 0 || filter.includes("\u0000")) return false
  const levels = filter.split("/")
  return levels.every((level, i) =>
    (level === "#" && i === levels.length - 1) || level === "+" || (!level.includes("+") && !level.includes("#"))
  )
}

const refMatches = (filter: string, topic: string): boolean => {
  const f = filter.split("/")
  const t = topic.split("/")
  if (topic.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true
    if (i >= t.length) return false
    if (f[i] !== "+" && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

describe("isValidTopicName", () => {
  it.each([
    ["sport/tennis/player1", true],
    ["/finance", true],
    ["/", true],
    ["//", true],
    ["a//b", true],
    ["$SYS/broker/uptime", true],
    ["sport tennis", true],
    ["", false],
    ["sport/+", false],
    ["sport/#", false],
    ["sport+", false],
    ["a#b", false],
    ["a\u0000b", false]
  ])("%j -> %s", (name, expected) => {
    expect(isValidTopicName(name)).toBe(expected)
  })

  it("limits length to 65535 UTF-8 bytes, not UTF-16 units", () => {
    expect(isValidTopicName("a".repeat(65535))).toBe(true)
    expect(isValidTopicName("a".repeat(65536))).toBe(false)
    // "é" is 2 bytes, "€" is 3, "😀" is 4 (a surrogate pair).
    expect(isValidTopicName("é".repeat(32767) + "a")).toBe(true)
    expect(isValidTopicName("é".repeat(32768))).toBe(false)
    expect(isValidTopicName("€".repeat(21845))).toBe(true)
    expect(isValidTopicName("€".repeat(21845) + "a")).toBe(false)
    expect(isValidTopicName("😀".repeat(16383) + "abc")).toBe(true)
    expect(isValidTopicName("😀".repeat(16384))).toBe(false)
  })

  it("rejects lone surrogates, which have no well-formed UTF-8 encoding", () => {
    expect(isValidTopicName("a\ud800")).toBe(false)
    expect(isValidTopicName("\udc00a")).toBe(false)
    expect(isValidTopicName("a\ud800b")).toBe(false)
    expect(isValidTopicName("a\ud83d\ude00b")).toBe(true)
  })
})

describe("isValidTopicFilter", () => {
  it.each([
    ["sport/tennis/player1", true],
    ["sport/tennis/player1/#", true],
    ["sport/#", true],
    ["sport/+", true],
    ["sport/+/player1", true],
    ["+/tennis/#", true],
    ["+/+", true],
    ["/+", true],
    ["+", true],
    ["#", true],
    ["/", true],
    ["//", true],
    ["/#", true],
    ["+/", true],
    ["$SYS/#", true],
    ["", false],
    ["sport+", false],
    ["sport/+x", false],
    ["sport/x+/y", false],
    ["++", false],
    ["sport/#/x", false],
    ["sport/tennis#", false],
    ["sp#", false],
    ["#/x", false],
    ["##", false],
    ["#/", false],
    ["a\u0000b", false]
  ])("%j -> %s", (filter, expected) => {
    expect(isValidTopicFilter(filter)).toBe(expected)
  })

  it("limits length to 65535 UTF-8 bytes", () => {
    expect(isValidTopicFilter("a".repeat(65533) + "/#")).toBe(true)
    expect(isValidTopicFilter("a".repeat(65534) + "/#")).toBe(false)
    expect(isValidTopicFilter("é".repeat(32768))).toBe(false)
    expect(isValidTopicFilter("a/\ud800")).toBe(false)
  })

  it("agrees with the level-by-level definition on random filters", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a+#/$\u0000]{0,8}$/), (filter) => {
        expect(isValidTopicFilter(filter)).toBe(refValidFilter(filter))
      }),
      { numRuns: 2000 }
    )
  })

  it("accepts exactly the wildcard-free strings that are valid topic names", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a+#/$\u0000]{0,8}$/), (s) => {
        const wildcardFree = !s.includes("+") && !s.includes("#")
        expect(isValidTopicName(s)).toBe(wildcardFree && isValidTopicFilter(s))
      }),
      { numRuns: 2000 }
    )
  })
})

describe("matches", () => {
  it.each([
    // Spec examples for "#".
    ["sport/tennis/player1/#", "sport/tennis/player1", true],
    ["sport/tennis/player1/#", "sport/tennis/player1/ranking", true],
    ["sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true],
    ["sport/tennis/player1/#", "sport/tennis/player2", false],
    ["sport/tennis/player1/#", "sport/tennis", false],
    ["sport/#", "sport", true],
    ["sport/#", "sport/", true],
    ["sport/#", "sport/a/b", true],
    ["sport/#", "sports", false],
    ["#", "sport/tennis", true],
    ["#", "/", true],
    // Spec examples for "+".
    ["sport/tennis/+", "sport/tennis/player1", true],
    ["sport/tennis/+", "sport/tennis/player2", true],
    ["sport/tennis/+", "sport/tennis/player1/ranking", false],
    ["sport/+", "sport", false],
    ["sport/+", "sport/", true],
    ["sport/+/player1", "sport/tennis/player1", true],
    ["sport/+/player1", "sport/tennis/player2", false],
    ["+/+", "/finance", true],
    ["/+", "/finance", true],
    ["+", "/finance", false],
    ["+", "finance", true],
    ["+/tennis/#", "sport/tennis/player1", true],
    ["+/tennis/#", "sport/tennis", true],
    // Empty levels are levels.
    ["+", "", true],
    ["+/+", "/", true],
    ["+", "/", false],
    ["a//b", "a//b", true],
    ["a/+/b", "a//b", true],
    ["a//b", "a/b", false],
    ["/", "/", true],
    ["//", "/", false],
    ["/#", "/", true],
    ["/#", "a", false],
    // Literal levels compare exactly.
    ["sport/tennis", "sport/tennis", true],
    ["sport/tennis", "sport/tennis/", false],
    ["sport/tennis/", "sport/tennis", false],
    ["sport/tennis", "sport/tenni", false],
    ["sport/tenni", "sport/tennis", false],
    ["Sport", "sport", false],
    // $-topics are invisible to leading wildcards.
    ["#", "$SYS/x", false],
    ["+/x", "$SYS/x", false],
    ["+", "$SYS", false],
    ["+/#", "$SYS/x", false],
    ["$SYS/#", "$SYS/x", true],
    ["$SYS/#", "$SYS", true],
    ["$SYS/+", "$SYS/x", true],
    ["$SYS/monitor/+", "$SYS/monitor/Clients", true],
    ["$SYS", "$SYS", true],
    ["$SYS/x", "$SYS/x", true],
    ["$other/#", "$other/a", true],
    // ...but only in the first level.
    ["a/+", "a/$SYS", true],
    ["a/#", "a/$SYS/x", true]
  ])("%j matches %j -> %s", (filter, topic, expected) => {
    expect(matches(filter, topic)).toBe(expected)
  })

  const level = fc.constantFrom("", "$SYS", "$", "a", "b", "ab")
  const topicArb = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join("/"))
  const filterArb = fc
    .tuple(fc.array(fc.oneof(level, fc.constant("+")), { maxLength: 5 }), fc.boolean())
    .map(([l, hash]) => (hash ? [...l, "#"] : l).join("/"))
    .filter(isValidTopicFilter)

  it("agrees with the level-splitting reference on random filters and topics", () => {
    fc.assert(
      fc.property(filterArb, topicArb, (filter, topic) => {
        expect(matches(filter, topic)).toBe(refMatches(filter, topic))
      }),
      { numRuns: 5000 }
    )
  })

  it("every valid topic name matches itself as a filter", () => {
    fc.assert(
      fc.property(topicArb.filter(isValidTopicName), (topic) => {
        expect(matches(topic, topic)).toBe(true)
      })
    )
  })
})

describe("isSystemTopic", () => {
  it.each([
    ["$SYS", true],
    ["$SYS/", true],
    ["$SYS/broker/uptime", true],
    ["$SYSTEM", false],
    ["$SYSx/a", false],
    ["$sys/a", false],
    ["$share/g/a", false],
    ["a/$SYS", false],
    ["/$SYS", false],
    ["SYS", false],
    ["", false]
  ])("%j -> %s", (topic, expected) => {
    expect(isSystemTopic(topic)).toBe(expected)
  })
})
