import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as StreamEntries from "../../src/cluster/StreamEntries.ts"

const plain = (entries: ReadonlyArray<StreamEntries.StreamEntry>) => entries.map((entry) => [entry.id, Object.fromEntries(entry.fields)])

describe("cluster StreamEntries", () => {
  it("an XREAD reply of one stream gives its entries in order, whether nested arrays (RESP2) or a map of streams (RESP3)", () => {
    const entries = [["1-0", ["b", "[batch]"]], ["2-0", ["c", "[claim]", "from", "dead"]]]
    const expected = [["1-0", { b: "[batch]" }], ["2-0", { c: "[claim]", from: "dead" }]]
    expect(plain(StreamEntries.fromRead([["mqtt:cluster:node:a:stream", entries]]))).toEqual(expected)
    expect(plain(StreamEntries.fromRead(new Map([["mqtt:cluster:node:a:stream", entries]])))).toEqual(expected)
    expect(plain(StreamEntries.fromRead([{ name: "s", messages: [{ id: "1-0", message: { b: "[batch]" } }] }]))).toEqual([["1-0", { b: "[batch]" }]])
    expect(plain(StreamEntries.fromRange(entries))).toEqual(expected)
  })

  it("a read that timed out has no entries", () => {
    expect(StreamEntries.fromRead(null)).toEqual([])
    expect(StreamEntries.fromRead(undefined)).toEqual([])
  })

  it("reading any reply never throws, and gives only entries with an id", () => {
    fc.assert(fc.property(fc.jsonValue(), (reply) => {
      for (const entry of [...StreamEntries.fromRead(reply), ...StreamEntries.fromRange(reply)]) expect(typeof entry.id).toBe("string")
    }))
  })
})
