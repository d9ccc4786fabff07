import { afterEach, describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import * as fc from "fast-check"
import { HELPER_NICE, HELPER_THREAD_NAME, helpers } from "../../src/entry/HelperThreads.ts"
import { freePort, killEntrypoints, startEntrypoint } from "../support/Entrypoint.ts"

/** The threads of process `pid` with their nice values, from /proc (the name may hold spaces: it is between the parentheses). */
const threadsOf = (pid: number): ReadonlyArray<{ readonly name: string; readonly nice: number }> =>
  readdirSync(`/proc/${pid}/task`).map((tid) => parseStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8")))

/** A thread's name and nice value from its `stat` line (proc(5): the name, between parentheses, may hold spaces). */
const parseStat = (stat: string): { readonly name: string; readonly nice: number } => ({
  name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
  // the fields after the name start with the state (field 3); nice is field 19
  nice: Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16])
})

describe("HelperThreads", () => {
  afterEach(killEntrypoints)

  it("helpers: exactly the threads named V8Worker are lowered, whatever else the process runs", () => {
    const name = fc.oneof(fc.constant(HELPER_THREAD_NAME), fc.constantFrom("MainThread", "libuv-worker", "node", "SignalInspector"), fc.string())
    fc.assert(
      fc.property(fc.uniqueArray(fc.record({ tid: fc.nat(), name }), { selector: (thread) => thread.tid }), (threads) => {
        expect(helpers(threads)).toEqual(threads.filter((thread) => thread.name === HELPER_THREAD_NAME).map((thread) => thread.tid))
      })
    )
    expect(helpers([{ tid: 1, name: "MainThread" }, { tid: 2, name: "V8Worker" }, { tid: 3, name: "libuv-worker" }])).toEqual([2])
  })

  it.skipIf(process.platform !== "linux")("the running broker's V8 helper threads run at nice 19, its main thread at the priority it was started with", async () => {
    const broker = await startEntrypoint(["--port", String(await freePort()), "--host", "127.0.0.1"])
    const threads = threadsOf(broker.process.pid!)
    const workers = threads.filter((thread) => thread.name === HELPER_THREAD_NAME)
    expect(workers.length).toBeGreaterThan(0)
    for (const worker of workers) expect(worker.nice).toBe(HELPER_NICE)
    // the test runner's own main thread: the priority the broker was started with
    const own = parseStat(readFileSync("/proc/self/stat", "utf8")).nice
    expect(own).not.toBe(HELPER_NICE)
    const others = threads.filter((thread) => thread.name !== HELPER_THREAD_NAME)
    expect(others.length).toBeGreaterThan(0)
    for (const thread of others) expect(thread, thread.name).toMatchObject({ nice: own })
  }, 20_000)
})
