import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { isValidTopicFilter, isValidTopicName, matches } from "../../src/protocol/Topic.ts"
import { type Route, SubscriptionIndex } from "../../src/routing/SubscriptionIndex.ts"

type QoS = 0 | 1 | 2

const entries = (m: Map<string, QoS>): Array<[string, QoS]> => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

describe("SubscriptionIndex", () => {
  it("starts empty and matches nothing", () => {
    const index = new SubscriptionIndex()
    expect(index.size).toBe(0)
    expect(index.nodeCount()).toBe(1)
    expect(index.match("a").size).toBe(0)
  })

  it.each([
    ["sport/tennis/player1/#", "sport/tennis/player1", true],
    ["sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true],
    ["sport/tennis/player1/#", "sport/tennis", false],
    ["sport/+/player1", "sport/tennis/player1", true],
    ["sport/+/player1", "sport/tennis/player2", false],
    ["sport/+", "sport", false],
    ["sport/+", "sport/", true],
    ["sport/#", "sport", true],
    ["+/+", "/finance", true],
    ["/+", "/finance", true],
    ["+", "/finance", false],
    ["+/+", "/", true],
    ["a//b", "a//b", true],
    ["a//b", "a/b", false],
    ["#", "$SYS/x", false],
    ["+/x", "$SYS/x", false],
    ["+/#", "$SYS", false],
    ["$SYS/#", "$SYS/x", true],
    ["$SYS/#", "$SYS", true],
    ["a/#", "a/$SYS", true]
  ])("filter %j matching topic %j -> %s", (filter, topic, expected) => {
    const index = new SubscriptionIndex()
    index.add("c", filter, 1)
    expect(index.match(topic).has("c")).toBe(expected)
  })

  it("delivers one entry per client at the highest QoS among its matching filters", () => {
    const index = new SubscriptionIndex()
    index.add("c1", "sport/#", 0)
    index.add("c1", "sport/+/player1", 2)
    index.add("c1", "sport/tennis/player1", 1)
    index.add("c2", "sport/tennis/+", 1)
    index.add("c3", "news/#", 2)
    expect(entries(index.match("sport/tennis/player1"))).toEqual([
      ["c1", 2],
      ["c2", 1]
    ])
    expect(entries(index.match("sport/golf"))).toEqual([["c1", 0]])
  })

  it("re-adding the same client and filter replaces the QoS without growing", () => {
    const index = new SubscriptionIndex()
    index.add("c", "a/b", 2)
    index.add("c", "a/b", 0)
    expect(index.size).toBe(1)
    expect(entries(index.match("a/b"))).toEqual([["c", 0]])
  })

  it("keeps different clients on the same filter apart", () => {
    const index = new SubscriptionIndex()
    index.add("c1", "a/+", 1)
    index.add("c2", "a/+", 2)
    expect(index.size).toBe(2)
    expect(index.remove("c1", "a/+")).toBe(true)
    expect(entries(index.match("a/x"))).toEqual([["c2", 2]])
  })

  it("remove reports whether the subscription existed", () => {
    const index = new SubscriptionIndex()
    index.add("c", "a/b", 1)
    expect(index.remove("c", "a")).toBe(false)
    expect(index.remove("c", "a/b/c")).toBe(false)
    expect(index.remove("other", "a/b")).toBe(false)
    expect(index.size).toBe(1)
    expect(index.remove("c", "a/b")).toBe(true)
    expect(index.remove("c", "a/b")).toBe(false)
    expect(index.size).toBe(0)
  })

  it("prunes emptied nodes but keeps nodes other filters still use", () => {
    const index = new SubscriptionIndex()
    index.add("c", "a/b/c", 1)
    index.add("c", "a/+/#", 1)
    index.add("d", "a", 0)
    const full = index.nodeCount()
    index.remove("c", "a/b/c")
    // "b" and "c" go; root, "a", "+", "#" stay.
    expect(index.nodeCount()).toBe(full - 2)
    expect(entries(index.match("a/b/c"))).toEqual([["c", 1]])
    index.remove("c", "a/+/#")
    expect(index.nodeCount()).toBe(2)
    expect(entries(index.match("a"))).toEqual([["d", 0]])
    index.remove("d", "a")
    expect(index.nodeCount()).toBe(1)
  })

  it("removeClient drops only the listed filters of that client", () => {
    const index = new SubscriptionIndex()
    index.add("c", "a/#", 1)
    index.add("c", "b", 1)
    index.add("c", "keep", 2)
    index.add("d", "a/#", 0)
    index.removeClient("c", ["a/#", "b", "never/subscribed"])
    expect(index.size).toBe(2)
    expect(entries(index.match("a/x"))).toEqual([["d", 0]])
    expect(index.match("b").size).toBe(0)
    expect(entries(index.match("keep"))).toEqual([["c", 2]])
  })

  it("handles topics with very many levels without exhausting the stack", () => {
    const index = new SubscriptionIndex()
    const deep = Array.from({ length: 20000 }, () => "+").join("/")
    index.add("c", deep, 1)
    index.add("d", "#", 0)
    const topic = "/".repeat(19999)
    expect(entries(index.match(topic))).toEqual([
      ["c", 1],
      ["d", 0]
    ])
    expect(index.remove("c", deep)).toBe(true)
    expect(index.nodeCount()).toBe(2)
  })

  describe("properties", () => {
    // A small level alphabet so random filters and topics collide often.
    const level = fc.constantFrom("", "$SYS", "a", "b")
    const filterArb = fc
      .array(fc.constantFrom("", "$SYS", "a", "b", "+", "#"), { minLength: 1, maxLength: 4 })
      .map((levels) => levels.join("/"))
      .filter(isValidTopicFilter)
    const topicArb = fc
      .array(level, { minLength: 1, maxLength: 5 })
      .map((levels) => levels.join("/"))
      .filter(isValidTopicName)
    const clientArb = fc.constantFrom("c1", "c2", "c3", "c4")
    const qosArb = fc.constantFrom<QoS>(0, 1, 2)
    const subArb = fc.tuple(clientArb, filterArb, qosArb)
    // An operation is an add, or (when the flag is set) a removal.
    const opsArb = fc.array(fc.tuple(subArb, fc.boolean()), { maxLength: 40 })

    /** Applies ops to both an index and a plain model keyed by client + filter. */
    const build = (ops: ReadonlyArray<readonly [readonly [string, string, QoS], boolean]>) => {
      const index = new SubscriptionIndex()
      const model = new Map<string, { client: string; filter: string; qos: QoS }>()
      for (const [[client, filter, qos], isRemove] of ops) {
        const key = `${client}\u0000${filter}`
        if (isRemove) {
          expect(index.remove(client, filter)).toBe(model.delete(key))
        } else {
          index.add(client, filter, qos)
          model.set(key, { client, filter, qos })
        }
      }
      return { index, model }
    }

    const bruteForce = (model: Map<string, { client: string; filter: string; qos: QoS }>, topic: string) => {
      const out = new Map<string, QoS>()
      for (const { client, filter, qos } of model.values()) {
        if (!matches(filter, topic)) continue
        const current = out.get(client)
        if (current === undefined || qos > current) out.set(client, qos)
      }
      return out
    }

    it("match equals brute-force max-QoS per client over all filters", () => {
      fc.assert(
        fc.property(opsArb, fc.array(topicArb, { minLength: 1, maxLength: 5 }), (ops, topics) => {
          const { index, model } = build(ops)
          for (const topic of topics) {
            expect(entries(index.match(topic))).toEqual(entries(bruteForce(model, topic)))
          }
        }),
        { numRuns: 1000 }
      )
    })

    it("route, kept between calls until the index changes, always equals the route a fresh index gives (No Local included)", () => {
      const stepArb = fc.oneof(
        fc.record({ kind: fc.constant("add" as const), client: clientArb, filter: filterArb, qos: qosArb, noLocal: fc.boolean() }),
        fc.record({ kind: fc.constant("remove" as const), client: clientArb, filter: filterArb }),
        fc.record({ kind: fc.constant("route" as const), topic: topicArb, publisher: fc.option(clientArb, { nil: undefined }) })
      )
      const routed = (route: Route) =>
        [...route.clients].map(([client, m]) => `${client}:${m.qos}`).sort().join(",")
      fc.assert(
        fc.property(fc.array(stepArb, { maxLength: 60 }), (steps) => {
          const index = new SubscriptionIndex()
          const model = new Map<string, { client: string; filter: string; qos: QoS; noLocal: boolean }>()
          for (const step of steps) {
            if (step.kind === "add") {
              index.add(step.client, step.filter, { qos: step.qos, noLocal: step.noLocal })
              model.set(`${step.client}\u0000${step.filter}`, step)
            } else if (step.kind === "remove") {
              index.remove(step.client, step.filter)
              model.delete(`${step.client}\u0000${step.filter}`)
            } else {
              const fresh = new SubscriptionIndex()
              for (const sub of model.values()) fresh.add(sub.client, sub.filter, { qos: sub.qos, noLocal: sub.noLocal })
              expect(routed(index.route(step.topic, step.publisher))).toBe(routed(fresh.route(step.topic, step.publisher)))
            }
          }
        }),
        { numRuns: 500 }
      )
    })

    it("size equals the number of distinct (client, filter) pairs", () => {
      fc.assert(
        fc.property(opsArb, (ops) => {
          const { index, model } = build(ops)
          expect(index.size).toBe(model.size)
        }),
        { numRuns: 500 }
      )
    })

    it("removing every added subscription leaves size 0 and only the root node", () => {
      fc.assert(
        fc.property(opsArb, fc.infiniteStream(fc.nat()), (ops, picks) => {
          const { index, model } = build(ops)
          // Remove in a random order so pruning is exercised from every side.
          const remaining = [...model.values()]
          while (remaining.length > 0) {
            const i = picks.next().value % remaining.length
            const { client, filter } = remaining.splice(i, 1)[0]!
            expect(index.remove(client, filter)).toBe(true)
          }
          expect(index.size).toBe(0)
          expect(index.nodeCount()).toBe(1)
          expect(index.match("a").size).toBe(0)
        }),
        { numRuns: 500 }
      )
    })

    it("removeClient of a client's filters removes exactly that client's matches", () => {
      fc.assert(
        fc.property(opsArb, clientArb, topicArb, (ops, victim, topic) => {
          const { index, model } = build(ops)
          const filters = [...model.values()].filter((s) => s.client === victim).map((s) => s.filter)
          index.removeClient(victim, filters)
          for (const [key, s] of model) if (s.client === victim) model.delete(key)
          expect(index.size).toBe(model.size)
          expect(entries(index.match(topic))).toEqual(entries(bruteForce(model, topic)))
        }),
        { numRuns: 500 }
      )
    })
  })
})

describe("SubscriptionIndex observer", () => {
  it("is told of each (client, filter) pair once when it enters and once when it leaves; a replaced subscription or a missing one tells nothing", () => {
    const index = new SubscriptionIndex()
    const events: Array<string> = []
    index.observe({ added: (filter) => events.push(`+${filter}`), removed: (filter) => events.push(`-${filter}`) })
    index.add("c1", "a/+", 1)
    index.add("c1", "a/+", 2)
    index.add("c2", "a/+", 0)
    index.add("c1", "$share/g/a/#", 1)
    expect(index.remove("c3", "a/+")).toBe(false)
    index.remove("c1", "a/+")
    index.removeClient("c1", ["$share/g/a/#", "b"])
    expect(events).toEqual(["+a/+", "+a/+", "+$share/g/a/#", "-a/+", "-$share/g/a/#"])
    index.observe(undefined)
    index.add("c4", "x", 0)
    expect(events).toHaveLength(5)
  })

  it("a shared group is named by its whole filter, the same on every broker node", () => {
    const index = new SubscriptionIndex()
    index.add("c1", "$share/g/a/+", 1)
    expect(index.route("a/b").shared.map((group) => [group.name, group.key])).toEqual([["g", "$share/g/a/+"]])
  })
})
