import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { NodeFilters } from "../../src/cluster/NodeFilters.ts"
import * as Plan from "../../src/cluster/Plan.ts"
import { SubscriptionIndex } from "../../src/routing/SubscriptionIndex.ts"
import { matches, parseSharedFilter } from "../../src/protocol/Topic.ts"

const SELF = "self"

/** A small topic space, so filters and topics often meet. */
const level = fc.constantFrom("a", "b", "c")
const topicArb = fc.array(level, { minLength: 1, maxLength: 3 }).map((levels) => levels.join("/"))
const filterArb = fc.oneof(
  topicArb,
  fc.array(fc.constantFrom("a", "b", "+"), { minLength: 1, maxLength: 3 }).map((levels) => levels.join("/")),
  fc.array(level, { minLength: 0, maxLength: 2 }).map((levels) => [...levels, "#"].join("/"))
)
const sharedArb = fc.tuple(fc.constantFrom("g1", "g2"), filterArb).map(([group, filter]) => `$share/${group}/${filter}`)
const anyFilterArb = fc.oneof(filterArb, sharedArb)
const nodeArb: fc.Arbitrary<string> = fc.constantFrom("n1", "n2", "n3", SELF)
/** Which node holds which filter. */
const holdingsArb = fc.array(fc.tuple(nodeArb, anyFilterArb), { maxLength: 12 })

/** The peers' filters, and this node's as a router would hold them (one client per filter). */
const build = (holdings: ReadonlyArray<readonly [string, string]>) => {
  const peers = new NodeFilters()
  const local = new SubscriptionIndex()
  for (const [node, filter] of holdings) {
    if (node === SELF) local.add(`client-${filter}`, filter, 1)
    else peers.add(node, filter)
  }
  return { peers, local }
}

/** The plain (not shared) filter a holding stands for, and its shared key if any. */
const plainOf = (filter: string): string => parseSharedFilter(filter)?.filter ?? filter

describe("cluster Plan", () => {
  it("a peer gets the message only if one of its filters matches the topic, always if a plain (not shared) one does, and never this node itself", () => {
    fc.assert(fc.property(holdingsArb, topicArb, (holdings, topic) => {
      const { peers, local } = build(holdings)
      const plan = Plan.plan(peers.route(topic), local.route(topic).shared, SELF, new Map())
      const needed = new Set(holdings.filter(([node, filter]) => node !== SELF && matches(plainOf(filter), topic)).map(([node]) => node))
      for (const node of plan.sends.keys()) expect(needed.has(node)).toBe(true)
      // every peer with a plain match gets it; a peer with only shared matches gets it when it serves one
      for (const [node, filter] of holdings) {
        if (node !== SELF && parseSharedFilter(filter) === undefined && matches(filter, topic)) expect(plan.sends.has(node)).toBe(true)
      }
      expect(plan.sends.has(SELF)).toBe(false)
    }))
  })

  it("each matching shared subscription is served by exactly one node among those with members", () => {
    fc.assert(fc.property(holdingsArb, topicArb, (holdings, topic) => {
      const { peers, local } = build(holdings)
      const plan = Plan.plan(peers.route(topic), local.route(topic).shared, SELF, new Map())
      const members = new Map<string, Set<string>>()
      for (const [node, filter] of holdings) {
        if (parseSharedFilter(filter) === undefined || !matches(plainOf(filter), topic)) continue
        const nodes = members.get(filter) ?? new Set()
        nodes.add(node)
        members.set(filter, nodes)
      }
      const servers = new Map<string, Array<string>>()
      for (const key of plan.local) servers.set(key, [...(servers.get(key) ?? []), SELF])
      for (const [node, keys] of plan.sends) for (const key of keys) servers.set(key, [...(servers.get(key) ?? []), node])
      expect(new Set(servers.keys())).toEqual(new Set(members.keys()))
      for (const [key, nodes] of servers) {
        expect(nodes).toHaveLength(1)
        expect(members.get(key)!.has(nodes[0]!)).toBe(true)
      }
    }))
  })

  it("a shared subscription's turns go round its nodes: over k rounds of n nodes, each serves k messages", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 30 }), (nodes, rounds) => {
        const peers = new NodeFilters()
        for (let i = 0; i < nodes; i++) peers.add(`n${i}`, "$share/g/t")
        const cursors: Plan.Cursors = new Map()
        const served = new Map<string, number>()
        for (let i = 0; i < nodes * rounds; i++) {
          const plan = Plan.plan(peers.route("t"), [], SELF, cursors)
          for (const [node, keys] of plan.sends) if (keys.includes("$share/g/t")) served.set(node, (served.get(node) ?? 0) + 1)
        }
        expect([...served.values()]).toEqual(Array.from({ length: nodes }, () => rounds))
      }))
  })

  it("this node takes its turn at a shared subscription with its peers, and then serves it itself", () => {
    const peers = new NodeFilters()
    peers.add("n1", "$share/g/t")
    const local = new SubscriptionIndex()
    local.add("c", "$share/g/t", 1)
    const cursors: Plan.Cursors = new Map()
    const first = Plan.plan(peers.route("t"), local.route("t").shared, SELF, cursors)
    const second = Plan.plan(peers.route("t"), local.route("t").shared, SELF, cursors)
    // "n1" < "self": n1 first, then this node
    expect(first.sends.get("n1")).toEqual(["$share/g/t"])
    expect(first.local.size).toBe(0)
    expect(second.sends.size).toBe(0)
    expect([...second.local]).toEqual(["$share/g/t"])
  })
})

describe("NodeFilters", () => {
  it("after any sequence of adds and removes, a node is routed to if and only if a filter it still holds matches", () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom("add", "remove"), fc.constantFrom("n1", "n2"), filterArb), { maxLength: 30 }), topicArb, (ops, topic) => {
        const peers = new NodeFilters()
        const model = new Map<string, Set<string>>()
        for (const [op, node, filter] of ops) {
          const set = model.get(node) ?? new Set()
          model.set(node, set)
          if (op === "add") {
            peers.add(node, filter)
            set.add(filter)
          } else {
            peers.remove(node, filter)
            set.delete(filter)
          }
        }
        const expected = [...model].filter(([, filters]) => [...filters].some((filter) => matches(filter, topic))).map(([node]) => node).sort()
        expect([...peers.route(topic).clients.keys()].sort()).toEqual(expected)
      }))
  })

  it("a snapshot replaces what was known of a node, and a dropped node is routed to no more", () => {
    const peers = new NodeFilters()
    peers.add("n1", "a/#")
    peers.replace("n1", ["b/+", "b/+"])
    expect(peers.route("a/x").clients.has("n1")).toBe(false)
    expect(peers.route("b/x").clients.has("n1")).toBe(true)
    expect([...peers.filtersOf("n1")]).toEqual(["b/+"])
    peers.drop("n1")
    expect(peers.route("b/x").clients.size).toBe(0)
    expect(peers.has("n1")).toBe(false)
  })
})
