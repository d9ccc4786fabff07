import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import type { Message } from "../../src/session/Message.ts"
import { MessageQueue } from "../../src/session/MessageQueue.ts"

const message = (n: number): Message => ({ topic: "t", payload: Buffer.from([n & 0xff]), qos: 1, retain: false })

type Op = { readonly push: number } | { readonly drop: number } | { readonly fork: number }

describe("MessageQueue", () => {
  it("push and drop keep FIFO order", () => {
    const q = MessageQueue.empty.push(message(1)).push(message(2)).push(message(3)).drop(1)
    expect(q.toArray()).toEqual([message(2), message(3)])
    expect(q.length).toBe(2)
    expect(q.at(0)).toEqual(message(2))
    expect(q.at(2)).toBeUndefined()
  })

  it("pushing onto an older version does not change the newer one (and vice versa)", () => {
    const base = MessageQueue.from([message(1)])
    const a = base.push(message(2))
    const b = base.push(message(3))
    expect(base.toArray()).toEqual([message(1)])
    expect(a.toArray()).toEqual([message(1), message(2)])
    expect(b.toArray()).toEqual([message(1), message(3)])
  })

  it("at is undefined outside 0..length-1, also below a dropped prefix; spreading a queue gives its messages in order", () => {
    const q = MessageQueue.from([message(1), message(2), message(3)]).drop(1)
    expect(q.at(-1)).toBeUndefined()
    expect(q.at(2)).toBeUndefined()
    expect([...q]).toEqual([message(2), message(3)])
    expect(JSON.stringify(q)).toBe(JSON.stringify([message(2), message(3)]))
  })

  it("a long-lived queue that drops most of what it held keeps exactly its window (across the compaction of its backing array)", () => {
    let q = MessageQueue.empty
    const model: Array<Message> = []
    for (let n = 0; n < 300; n++) {
      q = q.push(message(n))
      model.push(message(n))
      if (n % 3 === 2) {
        q = q.drop(2)
        model.splice(0, 2)
      }
      expect(q.length).toBe(model.length)
    }
    expect(q.toArray()).toEqual(model)
    const older = q
    q = q.drop(50).push(message(7))
    expect(q.toArray()).toEqual([...model.slice(50), message(7)])
    expect(older.toArray()).toEqual(model)
  })

  it("every version equals an array model after any mix of push, drop and branching from old versions", () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.nat(1000).map((n) => ({ push: n })),
      fc.nat(100).map((n) => ({ drop: n })),
      fc.nat(50).map((n) => ({ fork: n }))
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const versions: Array<[MessageQueue, Array<Message>]> = [[MessageQueue.empty, []]]
        let [queue, model] = versions[0]!
        for (const o of ops) {
          if ("push" in o) {
            queue = queue.push(message(o.push))
            model = [...model, message(o.push)]
          } else if ("drop" in o) {
            queue = queue.drop(o.drop)
            model = model.slice(o.drop)
          } else {
            ;[queue, model] = versions[o.fork % versions.length]!
          }
          versions.push([queue, model])
        }
        for (const [q, m] of versions) {
          expect(q.toArray()).toEqual(m)
          expect(q.length).toBe(m.length)
        }
      })
    )
  })
})
