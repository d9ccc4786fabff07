/**
 * What only a persistent provider promises: everything committed is there after the store is
 * closed and opened again (sessions with their queues, retained messages), and a file it cannot
 * read is refused with its name, never replaced by a fresh store.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Option } from "effect"
import * as fc from "fast-check"
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import type { Message } from "../../src/session/Message.ts"
import * as SqliteSessionStateProvider from "../../src/session/providers/SqliteSessionStateProvider.ts"
import type { SessionState } from "../../src/session/SessionState.ts"
import { SessionStoreError } from "../../src/session/SessionStateProvider.ts"
import { messageV5Arb, sessionStateArb } from "./Arbitraries.ts"
import { CLIENTS } from "./Model.ts"
import { normalizeState } from "./Normalize.ts"
import { params } from "./Props.ts"

const tempFile = () => join(mkdtempSync(join(tmpdir(), "mqtt-sqlite-")), "sessions.db")

/** Opens the store at `file`, runs `f` on it and closes it. */
const withStore = <A, E>(
  file: string,
  f: (store: Effect.Success<ReturnType<typeof SqliteSessionStateProvider.make>>) => Effect.Effect<A, E>
) => Effect.scoped(Effect.flatMap(SqliteSessionStateProvider.make({ file }), f))

/** Everything a provider holds, comparable. */
const snapshot = (store: Effect.Success<ReturnType<typeof SqliteSessionStateProvider.make>>) =>
  Effect.gen(function*() {
    const ids = [...(yield* store.provider.clientIds)].sort()
    const out: Record<string, unknown> = {}
    for (const id of ids) out[id] = normalizeState(Option.getOrUndefined(yield* store.provider.get(id)))
    return out
  })

/** One change to one client's session, as the broker makes them through `modify`. */
type Op =
  | { readonly _tag: "store"; readonly state: SessionState }
  | { readonly _tag: "remove"; readonly clientId: string }
  | { readonly _tag: "push"; readonly clientId: string; readonly messages: ReadonlyArray<Message> }
  | { readonly _tag: "drop"; readonly clientId: string; readonly count: number }
  | { readonly _tag: "header"; readonly clientId: string; readonly dropped: number }

const clientArb = fc.constantFrom(...CLIENTS)
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: sessionStateArb({ v5: true }).map((state) => ({ _tag: "store" as const, state })), weight: 2 },
  { arbitrary: clientArb.map((clientId) => ({ _tag: "remove" as const, clientId })), weight: 1 },
  {
    arbitrary: fc.record({ clientId: clientArb, messages: fc.array(messageV5Arb(), { minLength: 1, maxLength: 4 }) })
      .map((op) => ({ _tag: "push" as const, ...op })),
    weight: 5
  },
  { arbitrary: fc.record({ clientId: clientArb, count: fc.nat(5) }).map((op) => ({ _tag: "drop" as const, ...op })), weight: 3 },
  { arbitrary: fc.record({ clientId: clientArb, dropped: fc.nat(9) }).map((op) => ({ _tag: "header" as const, ...op })), weight: 1 }
)

const apply = (store: Effect.Success<ReturnType<typeof SqliteSessionStateProvider.make>>, op: Op) => {
  const p = store.provider
  switch (op._tag) {
    case "store":
      return p.store(op.state)
    case "remove":
      return p.remove(op.clientId)
    case "push":
      return p.modify(op.clientId, (s) => [undefined, Option.map(s, (s) => ({ ...s, queue: op.messages.reduce((q, m) => q.push(m), s.queue) }))])
    case "drop":
      return p.modify(op.clientId, (s) => [undefined, Option.map(s, (s) => ({ ...s, queue: s.queue.drop(op.count) }))])
    case "header":
      return p.modify(op.clientId, (s) => [undefined, Option.map(s, (s) => ({ ...s, dropped: op.dropped }))])
  }
}

describe("SqliteSessionStateProvider", () => {
  it("after close and reopen the store holds exactly the sessions it held with an expiry (those with expiry 0 end with their connection), queues included, whatever the changes and however they were grouped into commits", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(opArb, { minLength: 1, maxLength: 6 }), { maxLength: 12 }), async (batches) => {
        const file = tempFile()
        try {
          const before = await Effect.runPromise(withStore(file, (store) =>
            Effect.gen(function*() {
              // the operations of a batch run concurrently: several land in one commit
              for (const batch of batches) yield* Effect.forEach(batch, (op) => apply(store, op), { concurrency: 1 + (batch.length % 3), discard: true })
              return yield* snapshot(store)
            })))
          const after = await Effect.runPromise(withStore(file, snapshot))
          const kept = Object.fromEntries(Object.entries(before).filter(([, s]) => (s as { expiryInterval: number }).expiryInterval !== 0))
          expect(after).toEqual(kept)
        } finally {
          rmSync(join(file, ".."), { recursive: true, force: true })
        }
      }),
      params(0.1)
    )
  }, 120_000)

  it.effect("a deep queue drained and refilled is written as a difference and reads back in order", () =>
    Effect.gen(function*() {
      const file = tempFile()
      const message = (n: number): Message => ({ topic: `t/${n}`, payload: Buffer.from(String(n)), qos: 1, retain: false })
      yield* withStore(file, (store) =>
        Effect.gen(function*() {
          const [first] = fc.sample(sessionStateArb(), { numRuns: 1, seed: 7 })
          yield* store.provider.store({ ...first!, clientId: "deep", expiryInterval: 300 })
          for (let i = 0; i < 3000; i++) yield* apply(store, { _tag: "push", clientId: "deep", messages: [message(i)] })
          yield* apply(store, { _tag: "drop", clientId: "deep", count: 2500 + first!.queue.length })
          for (let i = 3000; i < 3100; i++) yield* apply(store, { _tag: "push", clientId: "deep", messages: [message(i)] })
        }))
      const queue = yield* withStore(file, (store) => Effect.map(store.provider.get("deep"), (s) => Option.getOrThrow(s).queue.toArray()))
      expect(queue.map((m) => m.topic)).toEqual(Array.from({ length: 600 }, (_, i) => `t/${2500 + i}`))
      const db = new DatabaseSync(file)
      expect((db.prepare("SELECT count(*) AS n FROM queue").get() as { n: number }).n).toBe(600)
      db.close()
    }))

  /** The files as a `kill -9` would leave them right now (database and WAL), opened as a copy: the client ids it holds. */
  const crashCopy = (file: string): Array<string> => {
    const copy = `${file}.crash`
    for (const suffix of ["", "-wal"]) {
      rmSync(copy + suffix, { force: true })
      if (existsSync(file + suffix)) copyFileSync(file + suffix, copy + suffix)
    }
    const db = new DatabaseSync(copy)
    const ids = db.prepare("SELECT client_id FROM sessions ORDER BY client_id").all().map((row) => (row as { client_id: string }).client_id)
    db.close()
    return ids
  }

  it.effect("what modify returned is in the files a kill -9 would leave; a deferred change is there once `committed` completes, not before", () =>
    Effect.gen(function*() {
      const file = tempFile()
      const [state] = fc.sample(sessionStateArb(), { numRuns: 1, seed: 11 })
      yield* withStore(file, (store) =>
        Effect.gen(function*() {
          yield* store.provider.modify("ephemeral", () => [undefined, Option.some({ ...state!, clientId: "ephemeral", expiryInterval: 0 })])
          yield* store.provider.modify("waited", () => [undefined, Option.some({ ...state!, clientId: "waited", expiryInterval: 60 })])
          expect(crashCopy(file)).toEqual(["waited"])
          yield* store.groupCommit.modifyDeferred("deferred", () => [undefined, Option.some({ ...state!, clientId: "deferred", expiryInterval: 60 })])
          expect(crashCopy(file)).toEqual(["waited"])
          yield* store.groupCommit.committed
          expect(crashCopy(file)).toEqual(["deferred", "waited"])
        }))
    }))

  it.effect("afterCommit runs each callback once everything changed before it is in the files, in call order, even one given when nothing was pending", () =>
    Effect.gen(function*() {
      const file = tempFile()
      const [state] = fc.sample(sessionStateArb(), { numRuns: 1, seed: 5 })
      yield* withStore(file, (store) =>
        Effect.gen(function*() {
          const ran: Array<string> = []
          store.groupCommit.afterCommit(() => ran.push("nothing pending"))
          expect(ran).toEqual(["nothing pending"])
          yield* store.groupCommit.modifyDeferred("a", () => [undefined, Option.some({ ...state!, clientId: "a", expiryInterval: 60 })])
          store.groupCommit.afterCommit(() => ran.push(`first, stored: ${crashCopy(file).join(",")}`))
          // nothing new changed, but an earlier callback waits: this one comes after it
          store.groupCommit.afterCommit(() => ran.push("second"))
          store.retained.set("r", { topic: "r", payload: Buffer.from("x"), qos: 1, retain: true })
          store.groupCommit.afterCommit(() => ran.push("third"))
          expect(ran).toEqual(["nothing pending"])
          yield* store.groupCommit.committed
          expect(ran).toEqual(["nothing pending", "first, stored: a", "second", "third"])
        }))
    }))

  it.effect("retained messages set and deleted are there after reopen", () =>
    Effect.gen(function*() {
      const file = tempFile()
      const message = (topic: string, text: string): Message => ({
        topic,
        payload: Buffer.from(text),
        qos: 1,
        retain: true,
        properties: { contentType: "text/plain", userProperties: [["k", "v"]] }
      })
      yield* withStore(file, (store) =>
        Effect.sync(() => {
          expect(store.retained.stored).toEqual([])
          store.retained.set("a/1", message("a/1", "one"))
          store.retained.set("a/2", message("a/2", "two"))
          store.retained.set("a/1", message("a/1", "uno"))
          store.retained.delete("a/2")
          store.retained.set("a/3", message("a/3", "three"))
        }))
      const stored = yield* withStore(file, (store) => Effect.succeed(store.retained.stored))
      expect(stored.map((m) => [m.topic, Buffer.from(m.payload).toString(), m.properties?.contentType]).sort()).toEqual([
        ["a/1", "uno", "text/plain"],
        ["a/3", "three", "text/plain"]
      ])
    }))

  const refused = (file: string) =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(withStore(file, () => Effect.void))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      expect(error).toBeInstanceOf(SessionStoreError)
      const text = String((error as SessionStoreError).cause)
      expect(text).toContain(file)
      return text
    })

  it.effect("a file that is not a database is refused with its name and left as it was", () =>
    Effect.gen(function*() {
      const file = tempFile()
      const garbage = Buffer.alloc(8192, "not a database ")
      writeFileSync(file, garbage)
      expect(yield* refused(file)).toMatch(/not a database/)
      expect(readFileSync(file).equals(garbage)).toBe(true)
    }))

  it.effect("a database whose pages are damaged is refused with its name", () =>
    Effect.gen(function*() {
      const file = tempFile()
      yield* withStore(file, (store) =>
        Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => store.provider.modify(`c${i}`, () => [undefined, Option.some({ ...fc.sample(sessionStateArb(), { numRuns: 1, seed: i })[0]!, clientId: `c${i}`, expiryInterval: 300 })]), { discard: true }))
      const bytes = readFileSync(file)
      // keep the header page, overwrite the rest with noise
      for (let i = 4096; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff
      writeFileSync(file, bytes)
      yield* refused(file)
    }))

  it.effect("a stored session that does not decode is refused with the file and the client named", () =>
    Effect.gen(function*() {
      const file = tempFile()
      yield* withStore(file, () => Effect.void)
      const db = new DatabaseSync(file)
      db.prepare("INSERT INTO sessions (client_id, state) VALUES (?, ?)").run("broken", "{\"v\":1,\"session\":{\"clientId\":7}}")
      db.close()
      expect(yield* refused(file)).toContain("\"broken\"")
    }))

  it.effect("a second store on a file already open is refused instead of sharing it", () =>
    Effect.gen(function*() {
      const file = tempFile()
      yield* withStore(file, (store) =>
        Effect.gen(function*() {
          yield* store.provider.store({ ...fc.sample(sessionStateArb(), { numRuns: 1, seed: 3 })[0]!, clientId: "a" })
          expect(yield* refused(file)).toMatch(/locked/)
        }))
    }))
})
