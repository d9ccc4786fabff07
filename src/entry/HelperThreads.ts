/**
 * Scheduling priority of V8's helper threads (`V8Worker`: the concurrent Maglev and Turbofan
 * compilers, concurrent marking and sweeping) for the broker process.
 *
 * The broker's event loop sleeps between reads; a message that arrives wakes it. When a helper
 * thread of the same process is compiling on the core the event loop last ran on (a Turbofan
 * job runs 3–20 ms; hot functions are still being tiered up seconds after start), the kernel
 * lets the compiler finish its time slice first: `perf sched` during `latency-q0` on 2 cores showed
 * the main thread runnable but waiting 3–4 ms behind its own `V8Worker`, with the other core busy
 * with the clients — the largest stalls of the run, at the same moment in every run (the same
 * function reaching the same tier). At the lowest priority (nice 19) a helper thread still gets
 * every idle cycle, but gives the core up as soon as the event loop wakes. Measured
 * (`latency-q0`, 2 cores, ours only, 10 runs each): p99.9 2.3–2.5 → 1.2–1.4 ms (median), samples
 * over 2 ms 10–14 → 3–8 per run; nice 10 was not enough (p99.9 2.0 ms).
 *
 * Only the `V8Worker` threads, which the main thread never waits on for a request: libuv's
 * thread pool (files, DNS, password hashing) keeps its priority, since the event loop waits for it.
 * Linux only (`setpriority` on a thread id changes that one thread; `/proc/self/task` lists
 * them); elsewhere, or without `/proc`, nothing changes.
 */
import { readdirSync, readFileSync } from "node:fs"
import { setPriority } from "node:os"

/** The name Node's V8 platform gives its worker threads. */
export const HELPER_THREAD_NAME = "V8Worker"

/** The nice value helper threads get: the lowest priority, idle cycles only when the event loop wants the core. */
export const HELPER_NICE = 19

/** One thread of a process: its id and its name (`/proc/<pid>/task/<tid>/comm`). */
export interface Thread {
  readonly tid: number
  readonly name: string
}

/** The threads whose priority is lowered: V8's helper threads, not the main thread nor libuv's pool. */
export const helpers = (threads: ReadonlyArray<Thread>): ReadonlyArray<number> =>
  threads.filter((thread) => thread.name === HELPER_THREAD_NAME).map((thread) => thread.tid)

/** This process's threads as `/proc` lists them; empty where there is no `/proc` (not Linux). */
const ownThreads = (): ReadonlyArray<Thread> => {
  let tids: Array<string>
  try {
    tids = readdirSync("/proc/self/task")
  } catch {
    return []
  }
  const threads: Array<Thread> = []
  for (const tid of tids) {
    try {
      threads.push({ tid: Number(tid), name: readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim() })
    } catch {
      // the thread ended meanwhile
    }
  }
  return threads
}

/**
 * Gives V8's helper threads the lowest scheduling priority; returns how many it lowered. Call it
 * once at start: Node starts them before any JavaScript runs and keeps them for the process's life.
 * Best effort: a thread that cannot be changed keeps its priority.
 */
export const lowerHelperThreads = (): number => {
  let lowered = 0
  for (const tid of helpers(ownThreads())) {
    try {
      setPriority(tid, HELPER_NICE)
      lowered++
    } catch {
      // not permitted here (lowering never needs a privilege, but a sandbox may refuse it)
    }
  }
  return lowered
}
