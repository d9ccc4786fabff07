/**
 * Many fibers working on the same and on different sessions at once: delivering (online and
 * offline), disconnecting and reconnecting, acknowledging. Afterwards every message sent to a
 * client must be accounted for exactly once: received by the client, still queued, or counted as
 * dropped; and every message received and not acknowledged must still be in flight. A provider
 * whose `modify` is not atomic (read, then write) loses updates and fails this.
 */
import { Effect, Option } from "effect"
import * as fc from "fast-check"
import type { QoS } from "../../src/session/Message.ts"
import { type ConnectRequest, EXPIRY_NEVER } from "../../src/session/SessionState.ts"
import { SessionStateProvider } from "../../src/session/SessionStateProvider.ts"
import * as Sessions from "../../src/session/Sessions.ts"
import type { Outgoing } from "../../src/session/Transitions.ts"
import { toModelMessage } from "./Normalize.ts"

export interface ClientPlan {
  readonly messages: ReadonlyArray<{ readonly qos: QoS; readonly online: boolean }>
  readonly deliverFibers: number
  readonly reconnects: number
  readonly acks: number
}

export interface ConcurrencyPlan {
  readonly clients: ReadonlyArray<ClientPlan>
  readonly receiveMaximum: number
  readonly maxQueuedMessages: number
  /** How many times a fiber yields before each operation, cycled through. */
  readonly yields: ReadonlyArray<number>
}

export const concurrencyPlanArbitrary: fc.Arbitrary<ConcurrencyPlan> = fc.record({
  clients: fc.array(
    fc.record({
      messages: fc.array(fc.record({ qos: fc.constantFrom<QoS>(1, 2), online: fc.boolean() }), { minLength: 1, maxLength: 24 }),
      deliverFibers: fc.integer({ min: 1, max: 4 }),
      reconnects: fc.nat(4),
      acks: fc.nat(16)
    }),
    { minLength: 1, maxLength: 4 }
  ),
  receiveMaximum: fc.integer({ min: 1, max: 4 }),
  maxQueuedMessages: fc.integer({ min: 1, max: 8 }),
  yields: fc.array(fc.nat(3), { minLength: 1, maxLength: 8 })
})

export class ConcurrencyViolation extends Error {
  override readonly name = "ConcurrencyViolation"
}

const encoder = new TextEncoder()

/** Runs the plan; needs `Sessions` (built with `maxQueuedMessages` of the plan) and the provider. */
export const runConcurrently = Effect.fnUntraced(function*(plan: ConcurrencyPlan) {
  const sessions = yield* Sessions.Sessions
  const provider = yield* SessionStateProvider
  const ids = plan.clients.map((_, i) => `k${i}`)
  const request = (clientId: string): ConnectRequest => ({
    clientId,
    clean: false,
    expiryInterval: EXPIRY_NEVER,
    receiveMaximum: plan.receiveMaximum,
    will: undefined
  })
  const received = new Map(ids.map((id) => [id, [] as Array<Outgoing>]))
  const acked = new Map(ids.map((id) => [id, new Set<string>()]))
  const record = (id: string, outgoing: ReadonlyArray<Outgoing>) => received.get(id)!.push(...outgoing)
  let tick = 0
  const pause = (fiber: number, op: number) =>
    Effect.gen(function*() {
      const n = plan.yields[(fiber + op) % plan.yields.length]!
      for (let i = 0; i < n; i++) yield* Effect.yieldNow
    })

  yield* Effect.forEach(ids, (id) => Effect.map(sessions.connect(request(id)), (c) => record(id, c.outgoing)), {
    concurrency: "unbounded",
    discard: true
  })

  const tasks: Array<Effect.Effect<void, unknown>> = []
  plan.clients.forEach((client, ci) => {
    const id = ids[ci]!
    for (let f = 0; f < client.deliverFibers; f++) {
      tasks.push(Effect.gen(function*() {
        for (let j = f; j < client.messages.length; j += client.deliverFibers) {
          yield* pause(f, j)
          const { online, qos } = client.messages[j]!
          const message = { topic: "t", payload: encoder.encode(`${id}-${j}`), qos, retain: false }
          record(id, yield* sessions.deliver(id, message, online))
        }
      }))
    }
    tasks.push(Effect.gen(function*() {
      for (let r = 0; r < client.reconnects; r++) {
        yield* pause(ci, r)
        yield* sessions.disconnect(id, false, tick++)
        yield* pause(ci, r + 1)
        record(id, (yield* sessions.connect(request(id))).outgoing)
      }
    }))
    tasks.push(Effect.gen(function*() {
      // acknowledges what it received, in order, the way a client does
      let cursor = 0
      for (let a = 0; a < client.acks; a++) {
        yield* pause(ci + 1, a)
        const log = received.get(id)!
        while (cursor < log.length && log[cursor]!._tag !== "Publish") cursor++
        const packet = log[cursor++]
        if (packet === undefined || packet._tag !== "Publish" || packet.packetId === undefined) continue
        const payload = toModelMessage(packet.message).payload
        if (packet.message.qos === 1) {
          record(id, yield* sessions.puback(id, packet.packetId))
        } else {
          record(id, yield* sessions.pubrec(id, packet.packetId))
          yield* pause(ci, a)
          record(id, yield* sessions.pubcomp(id, packet.packetId))
        }
        acked.get(id)!.add(payload)
      }
    }))
  })
  yield* Effect.forEach(tasks, (task) => task, { concurrency: "unbounded", discard: true })

  for (const [ci, client] of plan.clients.entries()) {
    const id = ids[ci]!
    const fail = (detail: string): never => {
      throw new ConcurrencyViolation(`${id}: ${detail}`)
    }
    const stored = yield* provider.get(id)
    if (Option.isNone(stored)) return fail("the persistent session is gone")
    const state = stored.value
    const sent = new Set(client.messages.map((_, j) => `${id}-${j}`))
    const seen = new Set<string>()
    for (const o of received.get(id)!) if (o._tag === "Publish") seen.add(toModelMessage(o.message).payload)
    const queued = state.queue.toArray().map((m) => toModelMessage(m).payload)
    const inflight = state.inflight.map((e) => toModelMessage(e.message).payload)
    for (const p of [...seen, ...queued]) if (!sent.has(p)) fail(`${p} was never sent to this client`)
    for (const p of queued) if (seen.has(p)) fail(`${p} was both sent and is still queued`)
    if (new Set(queued).size !== queued.length) fail(`a message is queued twice: ${queued.join(" ")}`)
    if (seen.size + queued.length + state.dropped !== sent.size) {
      fail(
        `${sent.size} messages were sent to it but ${seen.size} were received, ${queued.length} are queued and ` +
          `${state.dropped} were dropped (lost updates?)`
      )
    }
    const unacknowledged = [...seen].filter((p) => !acked.get(id)!.has(p)).sort()
    if (unacknowledged.join(" ") !== [...inflight].sort().join(" ")) {
      fail(`received and not acknowledged: [${unacknowledged.join(" ")}], in flight: [${[...inflight].sort().join(" ")}]`)
    }
    const packetIds = state.inflight.map((e) => e.packetId)
    if (new Set(packetIds).size !== packetIds.length) fail(`duplicate packet ids in flight: ${packetIds.join(" ")}`)
    if (state.inflight.length > state.receiveMaximum) fail(`${state.inflight.length} in flight over the window`)
    if (state.queue.length > plan.maxQueuedMessages) fail(`${state.queue.length} queued over the bound`)
  }
})
