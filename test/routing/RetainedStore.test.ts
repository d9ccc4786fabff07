import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { isValidTopicFilter, matches } from "../../src/protocol/Topic.ts"
import { RetainedStore } from "../../src/routing/RetainedStore.ts"

const topics = (pairs: Array<[string, unknown]>): Array<string> => pairs.map(([t]) => t).sort()

const seeded = (): RetainedStore<string> => {
  const store = new RetainedStore<string>()
  for (const topic of ["sport", "sport/tennis", "sport/tennis/player1", "sport/golf", "/finance", "$SYS/uptime", "a//b"]) {
    store.set(topic, `msg:${topic}`)
  }
  return store
}

describe("RetainedStore", () => {
  it("set, get, delete and size", () => {
    const store = new RetainedStore<number>()
    expect(store.size).toBe(0)
    expect(store.get("a")).toBeUndefined()
    store.set("a", 1)
    store.set("b", 2)
    store.set("a", 3)
    expect(store.size).toBe(2)
    expect(store.get("a")).toBe(3)
    expect(store.delete("a")).toBe(true)
    expect(store.delete("a")).toBe(false)
    expect(store.get("a")).toBeUndefined()
    expect(store.size).toBe(1)
  })

  it.each([
    ["sport/#", ["sport", "sport/golf", "sport/tennis", "sport/tennis/player1"]],
    ["sport/+", ["sport/golf", "sport/tennis"]],
    ["sport/+/player1", ["sport/tennis/player1"]],
    ["+/+", ["/finance", "sport/golf", "sport/tennis"]],
    ["/+", ["/finance"]],
    ["+", ["sport"]],
    ["#", ["/finance", "a//b", "sport", "sport/golf", "sport/tennis", "sport/tennis/player1"]],
    ["$SYS/#", ["$SYS/uptime"]],
    ["+/uptime", []],
    ["a/+/b", ["a//b"]],
    ["sport/tennis", ["sport/tennis"]],
    ["a//b", ["a//b"]],
    ["$SYS/uptime", ["$SYS/uptime"]],
    ["sport/tennis/player2", []],
    ["nothing/#", []]
  ])("match(%j) -> %j", (filter, expected) => {
    expect(topics(seeded().match(filter))).toEqual(expected)
  })

  it("returns the stored message with each topic", () => {
    const store = seeded()
    expect(store.match("sport/tennis")).toEqual([["sport/tennis", "msg:sport/tennis"]])
    expect(store.match("sport/tennis/+")).toEqual([["sport/tennis/player1", "msg:sport/tennis/player1"]])
  })

  it("finds a retained undefined message by exact lookup", () => {
    const store = new RetainedStore<undefined>()
    store.set("a", undefined)
    expect(store.match("a")).toEqual([["a", undefined]])
    expect(store.match("b")).toEqual([])
  })

  it("does not see deleted messages", () => {
    const store = seeded()
    store.delete("sport/tennis")
    expect(topics(store.match("sport/+"))).toEqual(["sport/golf"])
    expect(store.match("sport/tennis")).toEqual([])
  })

  it("match returns exactly the stored topics that the filter matches", () => {
    const level = fc.constantFrom("", "$SYS", "a", "b")
    const topicArb = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join("/"))
    const filterArb = fc
      .array(fc.constantFrom("", "$SYS", "a", "b", "+", "#"), { minLength: 1, maxLength: 4 })
      .map((l) => l.join("/"))
      .filter(isValidTopicFilter)
    fc.assert(
      fc.property(fc.uniqueArray(topicArb, { maxLength: 20 }), filterArb, (stored, filter) => {
        const store = new RetainedStore<string>()
        for (const topic of stored) store.set(topic, topic.toUpperCase())
        const expected = stored.filter((t) => matches(filter, t)).sort()
        const result = store.match(filter)
        expect(topics(result)).toEqual(expected)
        for (const [topic, message] of result) expect(message).toBe(topic.toUpperCase())
      }),
      { numRuns: 1000 }
    )
  })
})

describe("RetainedStore.load", () => {
  it("sets and clears without writing through: a change that came from the sink's side is not sent back", () => {
    const store = new RetainedStore<string>()
    const written: Array<string> = []
    store.writeThrough({ set: (topic, message) => written.push(`${topic}=${message}`), delete: (topic) => written.push(`-${topic}`) })
    store.load("a", "from-peer")
    expect(store.get("a")).toBe("from-peer")
    store.load("a", undefined)
    expect(store.get("a")).toBeUndefined()
    store.set("b", "own")
    expect(written).toEqual(["b=own"])
  })
})
