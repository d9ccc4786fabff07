/**
 * When to give back the memory V8 grew for a burst (README "Memory").
 *
 * Under a burst — thousands of clients connecting, a churn of connections, a flood of messages —
 * V8 grows its young generation (up to 64 MB per semi-space here) and keeps the pages it frees in a
 * pool. Its own memory reducer, which would return them once the process idles, judges the
 * allocation rate from the last garbage collections; an idle broker collects nothing, so that
 * judgement never changes and the memory stays: measured, ~60 MB of pooled pages for 5,000 idle
 * clients, held for as long as they stayed connected. A trim — one memory-reducing full GC — gives
 * them back, but pauses the process (~100 ms at 5,000 clients), so it is taken only when it pays:
 * the committed heap has grown by `growthBytes` since the last trim (or since start), the event loop
 * was quiet over the last reading, and trims stay within `timeBudget` of the time.
 *
 * Pure: readings in, decisions out; `HeapTrim.ts` takes the readings and runs the GC.
 */

/** The thresholds of a trim. */
export interface TrimPolicy {
  /** Growth of the committed heap (bytes) above the last trim's that makes a trim worth its pause. */
  readonly growthBytes: number
  /** Event-loop utilization (0–1) over a reading below which the broker counts as quiet. */
  readonly quietUtilization: number
  /** The share of time trims may take: after a trim of `d` ms the next waits at least `d / timeBudget` ms. */
  readonly timeBudget: number
}

/** 16 MB of growth, quiet under 5 % utilization, trims at most 1 % of the time. */
export const defaultPolicy: TrimPolicy = { growthBytes: 16 * 1024 * 1024, quietUtilization: 0.05, timeBudget: 0.01 }

/** What the trimmer remembers between readings. */
export interface TrimState {
  /** The committed heap after the last trim, or the lowest seen since (bytes); at first, the heap the trimmer started with. */
  readonly baseline: number
  /** No trim before this time (ms). */
  readonly notBefore: number
}

/** One reading of the process. */
export interface Reading {
  /** When it was taken (ms). */
  readonly now: number
  /** Event-loop utilization since the previous reading (0–1). */
  readonly utilization: number
  /** V8's committed heap (`total_heap_size`, bytes). */
  readonly committed: number
}

/**
 * Before any trim, growth counts from the heap the trimmer starts with (`committed` bytes): the
 * start's own garbage is small (~4 MB of RSS at `npm start`) and not worth delaying the first
 * burst's trim by the budget's wait.
 */
export const initial = (committed: number): TrimState => ({ baseline: committed, notBefore: 0 })

/** Whether `reading` calls for a trim. */
export const shouldTrim = (policy: TrimPolicy, state: TrimState, reading: Reading): boolean =>
  reading.now >= state.notBefore &&
  reading.utilization < policy.quietUtilization &&
  reading.committed - state.baseline >= policy.growthBytes

/** The state after a reading that did not trim: the baseline follows the heap down when V8 shrinks it by itself. */
export const observed = (state: TrimState, reading: Reading): TrimState =>
  reading.committed < state.baseline ? { ...state, baseline: reading.committed } : state

/** The state after a trim that ended at `now`, took `tookMs` and left `committed` bytes. */
export const trimmed = (policy: TrimPolicy, committed: number, now: number, tookMs: number): TrimState => ({
  baseline: committed,
  notBefore: now + tookMs / policy.timeBudget
})
