/**
 * The heap trim (`TrimPolicy.ts` says when and why): reads the event loop's utilization and V8's
 * committed heap every `intervalMs` and, when the policy says so, runs one memory-reducing full GC —
 * the "last resort" collection, which also shrinks the young generation and releases the page pool.
 *
 * V8's `gc` is reached without `--expose-gc` on the command line: the flag is set for as long as it
 * takes to create one extra context and take its `gc`, then unset, so the application's own
 * contexts never see a `gc` global. One trimmer per process: the GC is the whole process's, so a
 * second broker in it (tests, an app embedding two) leaves the trimming to the first.
 */
import { Effect, Schedule } from "effect"
import { performance } from "node:perf_hooks"
import { getHeapStatistics, setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as TrimPolicy from "./TrimPolicy.ts"

/** How often the process is read (ms): a trim comes 0.5–1 s after the burst ends. */
export const INTERVAL_MS = 500

/** What one trim did. */
export interface Trim {
  /** How long the collection paused the process (ms). */
  readonly tookMs: number
  /** V8's committed heap before and after (bytes). */
  readonly committedBefore: number
  readonly committedAfter: number
  /** The process's resident memory before and after (bytes). */
  readonly rssBefore: number
  readonly rssAfter: number
}

/** The options of `run`. */
export interface Options {
  readonly policy?: TrimPolicy.TrimPolicy
  readonly intervalMs?: number
  /** Told of every trim (tests, metrics). */
  readonly onTrim?: (trim: Trim) => void
}

type Collect = (options: { readonly type: "major"; readonly execution: "sync"; readonly flavor: "last-resort" }) => void

/** V8's `gc` function: the global one when Node was started with `--expose-gc`, else one taken from a context made for it; undefined when neither can be had. */
const collector = (): Collect | undefined => {
  const exposed: unknown = (globalThis as { readonly gc?: unknown }).gc
  if (typeof exposed === "function") return exposed as Collect
  try {
    setFlagsFromString("--expose-gc")
    try {
      const gc: unknown = runInNewContext("gc")
      return typeof gc === "function" ? gc as Collect : undefined
    } finally {
      setFlagsFromString("--no-expose-gc")
    }
  } catch {
    return undefined
  }
}

/** Runs the collection and says what it did. */
const trimWith = (gc: Collect): Trim => {
  const committedBefore = getHeapStatistics().total_heap_size
  const rssBefore = process.memoryUsage.rss()
  const start = performance.now()
  gc({ type: "major", execution: "sync", flavor: "last-resort" })
  return {
    tookMs: performance.now() - start,
    committedBefore,
    committedAfter: getHeapStatistics().total_heap_size,
    rssBefore,
    rssAfter: process.memoryUsage.rss()
  }
}

const mb = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(1)

/** The debug line a trim logs. */
export const describe = (trim: Trim): string =>
  `heap trimmed in ${trim.tookMs.toFixed(0)} ms: committed heap ${mb(trim.committedBefore)} -> ${mb(trim.committedAfter)} MB, ` +
  `RSS ${mb(trim.rssBefore)} -> ${mb(trim.rssAfter)} MB`

let running = false

/** Trims this process's heap as `TrimPolicy` says until interrupted (run it in the broker's scope); nothing when another trimmer already runs in this process. */
export const run = (options: Options = {}): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (running) return Effect.void
    const gc = collector()
    if (gc === undefined) return Effect.logDebug("heap trim: V8's gc cannot be reached in this process; it is left to V8")
    running = true
    const policy = options.policy ?? TrimPolicy.defaultPolicy
    let state = TrimPolicy.initial(getHeapStatistics().total_heap_size)
    let last = performance.eventLoopUtilization()
    const tick = Effect.suspend(() => {
      const current = performance.eventLoopUtilization()
      const reading: TrimPolicy.Reading = {
        now: performance.now(),
        utilization: performance.eventLoopUtilization(current, last).utilization,
        committed: getHeapStatistics().total_heap_size
      }
      last = current
      if (!TrimPolicy.shouldTrim(policy, state, reading)) {
        state = TrimPolicy.observed(state, reading)
        return Effect.void
      }
      const trim = trimWith(gc)
      state = TrimPolicy.trimmed(policy, trim.committedAfter, performance.now(), trim.tookMs)
      // the pause is the trim's own: the next reading must not take it for load
      last = performance.eventLoopUtilization()
      options.onTrim?.(trim)
      return Effect.logDebug(describe(trim))
    })
    return Effect.repeat(tick, Schedule.spaced(options.intervalMs ?? INTERVAL_MS)).pipe(
      Effect.asVoid,
      Effect.ensuring(Effect.sync(() => {
        running = false
      }))
    )
  })
