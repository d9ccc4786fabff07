import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { ForwardingAddresses } from "../../src/cluster/ForwardingAddresses.ts"
import type { Message } from "../../src/session/Message.ts"
import type { Subscription } from "../../src/session/SessionState.ts"

/** Addresses over a counted filter set, as the cluster service keeps it. */
const make = () => {
  const held = new Map<string, number>()
  const addresses = new ForwardingAddresses({
    hold: (filter) => held.set(filter, (held.get(filter) ?? 0) + 1),
    unhold: (filter) => {
      const count = (held.get(filter) ?? 0) - 1
      if (count > 0) held.set(filter, count)
      else held.delete(filter)
    }
  })
  return { addresses, held }
}

const message = (topic: string, qos: 0 | 1 | 2, retain = false): Message => ({ topic, payload: new Uint8Array([1]), qos, retain })
const subs = (entries: Array<[string, Subscription]>): ReadonlyMap<string, Subscription> => new Map(entries)

describe("cluster ForwardingAddresses", () => {
  it("what matches a moved client's subscriptions is sent on to its new node, made for it (QoS downgraded, No Local, identifiers)", () => {
    const { addresses } = make()
    addresses.start("dev", "B", subs([["a/+", { qos: 1, identifier: 7 }], ["own/#", { qos: 2, noLocal: true }]]))
    expect(addresses.route(message("a/x", 2), "pub")).toEqual([{ node: "B", clientId: "dev", message: { ...message("a/x", 1), subscriptionIds: [7] } }])
    expect(addresses.route(message("own/x", 1), "dev")).toEqual([])
    expect(addresses.route(message("b/x", 1), "pub")).toEqual([])
  })

  it("an address goes only once the new node said it routes the client and is known to hold every filter of it, in either order", () => {
    const { addresses, held } = make()
    addresses.start("dev", "B", subs([["a/#", { qos: 1 }], ["c/d", { qos: 0 }]]))
    expect(held).toEqual(new Map([["a/#", 1], ["c/d", 1]]))
    // said, but B's filters not known here yet: keep sending on
    addresses.settled("dev", "B", new Set(["a/#"]))
    expect(addresses.route(message("a/x", 1), undefined)).toHaveLength(1)
    addresses.recheck("B", new Set(["a/#", "c/d"]))
    expect(addresses.route(message("a/x", 1), undefined)).toEqual([])
    expect(addresses.isEmpty).toBe(true)
    expect(held.size).toBe(0)
    // known first, said later: goes when said
    addresses.start("dev", "C", subs([["a/#", { qos: 1 }]]))
    addresses.recheck("C", new Set(["a/#"]))
    expect(addresses.has("dev")).toBe(true)
    addresses.settled("dev", "C", new Set(["a/#"]))
    expect(addresses.has("dev")).toBe(false)
  })

  it("a notice or stop for an older move does not remove the address of a newer one", () => {
    const { addresses } = make()
    addresses.start("dev", "B", subs([["a/#", { qos: 1 }]]))
    addresses.start("dev", "C", subs([["a/#", { qos: 1 }]]))
    addresses.settled("dev", "B", new Set(["a/#"]))
    addresses.stop("dev", "B")
    expect(addresses.route(message("a/1", 1), undefined).map((o) => o.node)).toEqual(["C"])
  })

  it("the filters held for moving clients always equal the filters of the addresses left, whatever starts, notices and stops happen", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("start" as const), client: fc.constantFrom("c1", "c2"), node: fc.constantFrom("B", "C"), filters: fc.subarray(["a/#", "b", "c/+"], { minLength: 1 }) }),
      fc.record({ kind: fc.constant("settled" as const), client: fc.constantFrom("c1", "c2"), node: fc.constantFrom("B", "C"), known: fc.subarray(["a/#", "b", "c/+"]) }),
      fc.record({ kind: fc.constant("stop" as const), client: fc.constantFrom("c1", "c2"), node: fc.constantFrom("B", "C") })
    )
    fc.assert(fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
      const { addresses, held } = make()
      const expected = new Map<string, { node: string; filters: Array<string> }>()
      for (const o of ops) {
        if (o.kind === "start") {
          addresses.start(o.client, o.node, subs(o.filters.map((f) => [f, { qos: 1 }])))
          expected.set(o.client, { node: o.node, filters: o.filters })
        } else if (o.kind === "settled") {
          addresses.settled(o.client, o.node, new Set(o.known))
          const e = expected.get(o.client)
          if (e?.node === o.node && e.filters.every((f) => o.known.includes(f))) expected.delete(o.client)
        } else {
          addresses.stop(o.client, o.node)
          if (expected.get(o.client)?.node === o.node) expected.delete(o.client)
        }
      }
      const counts = new Map<string, number>()
      for (const { filters } of expected.values()) for (const f of filters) counts.set(f, (counts.get(f) ?? 0) + 1)
      expect(held).toEqual(counts)
      expect(addresses.isEmpty).toBe(expected.size === 0)
    }))
  })
})
