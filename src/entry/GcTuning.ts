/**
 * Garbage-collector settings for the broker process.
 *
 * Every byte a socket reads is a fresh ArrayBuffer outside the JS heap, and V8 by default starts
 * a full mark-compact each time 64 MB more of such external memory has been allocated since the
 * last one, whatever the heap holds. A client streaming 16 MB packets then forces a full GC every
 * few packets — ~10 ms pauses for every other client (measured in `npm run bench`,
 * `large-packets`: 50 mark-compacts in 5 s). Counting external memory in the global allocation
 * limit instead lets that limit grow with what the process really keeps, so short-lived upload
 * buffers are collected far less often (11 mark-compacts in the same run).
 */
import { setFlagsFromString } from "node:v8"

/** The V8 flags the broker runs with; they can equally be given on the command line. */
export const V8_FLAGS = ["--external-memory-accounted-in-global-limit"] as const

/** Applies `V8_FLAGS` to this process; call it first thing, before the heap grows. */
export const tuneGarbageCollector = (): void => {
  for (const flag of V8_FLAGS) setFlagsFromString(flag)
}
