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
 *
 * Young-generation scavenges run on the main thread alone. A parallel scavenge hands part of the
 * work to a helper thread and waits for it; the broker's scavenges keep little (~80 KB of a 4 MB
 * young generation at 2,000 msg/s), so the helper saves nothing, and when the other cores are
 * busy (the clients, other processes) the main thread waits milliseconds for it to be scheduled.
 * `latency-q0` on 2 shared cores: longest scavenge 0.8 ms single-threaded against 1–36 ms parallel
 * under load (1.0 ms when the machine was quiet), and 11 against 14–47 ms of scavenging in 4 s.
 *
 * The young generation's size (`--min-semi-space-size`, `--max-semi-space-size`) is not here: V8
 * reads it once, when the heap is created, so it cannot be set from inside the process (it has to
 * be on the `node` command line or in NODE_OPTIONS). Neither direction paid as a default: 16 MB
 * semi-spaces cut the scavenges 4× but made each longer, added two mark-compacts per `latency-q0`
 * run and a worse p99.9, and cost ~10 KB more RSS per idle connection; a 4 MB cap (V8 lets them
 * grow to 64 MB each here) takes a third off the RSS of 5,000 idle connections and keeps churn's
 * RSS flat, but costs fan-in and fan-out 10–35 % of their throughput (bench/README.md "Footprint",
 * README "Memory": an operator who mostly holds idle connections can set it).
 */
import { setFlagsFromString } from "node:v8"

/** The V8 flags the broker runs with; they can equally be given on the command line. */
export const V8_FLAGS = ["--external-memory-accounted-in-global-limit", "--no-parallel-scavenge"] as const

/** Applies `V8_FLAGS` to this process; call it first thing, before the heap grows. */
export const tuneGarbageCollector = (): void => {
  for (const flag of V8_FLAGS) setFlagsFromString(flag)
}
