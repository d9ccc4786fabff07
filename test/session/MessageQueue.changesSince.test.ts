/**
 * `MessageQueue.changesSince`: what a persistent provider writes instead of the whole queue. Its
 * answer, applied to the older queue (drop that many, append those), gives the newer one exactly.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import type { Message } from "../../src/session/Message.ts"
import { MessageQueue } from "../../src/session/MessageQueue.ts"
import { params } from "./Props.ts"

const message = (n: number): Message => ({ topic: `t/${n}`, payload: Buffer.from([n & 0xff]), qos: 1, retain: false })

type Op = { readonly push: number } | { readonly drop: number } | { readonly fork: number }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.nat(1000).map((push) => ({ push })), weight: 4 },
  { arbitrary: fc.nat(80).map((drop) => ({ drop })), weight: 2 },
  { arbitrary: fc.nat(20).map((fork) => ({ fork })), weight: 1 }
)

describe("MessageQueue.changesSince", () => {
  it("dropping `dropped` from any earlier version and appending `appended` gives the later one (when it answers)", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 300 }), fc.nat(), (ops, pick) => {
        const versions: Array<MessageQueue> = [MessageQueue.empty]
        let current = MessageQueue.empty
        for (const op of ops) {
          if ("push" in op) current = current.push(message(op.push))
          else if ("drop" in op) current = current.drop(op.drop)
          else current = versions[op.fork % versions.length]!
          versions.push(current)
        }
        const older = versions[pick % versions.length]!
        const changes = current.changesSince(older)
        if (changes === undefined) return
        const rebuilt = [...older.toArray().slice(changes.dropped), ...changes.appended]
        expect(rebuilt).toEqual(current.toArray())
        expect(Math.max(0, older.length - changes.dropped) + changes.appended.length).toBe(current.length)
      }),
      params()
    )
  })

  it("answers for a queue grown and drained in place (the broker's own pattern), never for an unrelated one", () => {
    const older = MessageQueue.from([message(1), message(2)])
    const newer = older.drop(1).push(message(3)).push(message(4))
    expect(newer.changesSince(older)).toEqual({ dropped: 1, appended: [message(3), message(4)] })
    expect(older.changesSince(older)).toEqual({ dropped: 0, appended: [] })
    expect(MessageQueue.from(newer).changesSince(older)).toBeUndefined()
    // drained past everything the older one held
    const fresh = MessageQueue.from([message(1), message(2)])
    const drained = fresh.push(message(3)).drop(2).push(message(5))
    expect(drained.changesSince(fresh)).toEqual({ dropped: 2, appended: [message(3), message(5)] })
  })
})
