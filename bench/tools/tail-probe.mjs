// Diagnostics for the latency tail (`latency-q0`): preloaded into a Node process
// (`BENCH_OURS_NODE_FLAGS="--import ./bench/tools/tail-probe.mjs"` for ours, `node --import` for the
// harness), it records every GC pause with its wall-clock start and, with TAIL_PROBE_LAG=1, every
// event-loop stall over 1 ms seen by a 2 ms timer (which itself adds wake-ups). Written at exit to
// TAIL_PROBE_DIR (default the temp dir) as probe-<pid>.txt: `gc <epoch ms> <ms> <kind>`,
// `lag <epoch ms> <ms>`, an `eld` line with the event-loop delay percentiles (with TAIL_PROBE_LAG=1) and a `new_space` line.
// What neither shows is a thread that is runnable but not running: the broker's event loop waiting
// for a core behind its own V8 compiler threads (fixed: src/entry/HelperThreads.ts), the harness, or
// another process. `perf sched record -k CLOCK_MONOTONIC -a -- sleep 7` beside a run, then
// `perf sched timehist`, lays every thread's wait/delay/run against the trace's third column
// (BENCH_LATENCY_TRACE's monotonic ms); `perf record -F 5000 -a -g -k CLOCK_MONOTONIC` adds what ran.
import { writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { getHeapSpaceStatistics } from "node:v8"
import { join } from "node:path"
import { monitorEventLoopDelay, performance, PerformanceObserver } from "node:perf_hooks"

const out = join(process.env.TAIL_PROBE_DIR ?? tmpdir(), `probe-${process.pid}.txt`)
const lines = []
const origin = performance.timeOrigin
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) lines.push(`gc ${(origin + e.startTime).toFixed(3)} ${e.duration.toFixed(3)} ${e.detail?.kind ?? 0}`)
}).observe({ entryTypes: ["gc"] })
// both timers wake the process up every 1-2 ms: only on demand
const delay = process.env.TAIL_PROBE_LAG === "1" ? monitorEventLoopDelay({ resolution: 1 }) : undefined
if (delay !== undefined) {
  delay.enable()
  let last = performance.now()
  const tick = () => {
    const now = performance.now()
    const lag = now - last - 2
    if (lag > 1) lines.push(`lag ${(origin + last + 2).toFixed(3)} ${lag.toFixed(3)}`)
    last = now
    setTimeout(tick, 2).unref()
  }
  setTimeout(tick, 2).unref()
}
process.on("exit", () => {
  const ms = (q) => (delay.percentile(q) / 1e6).toFixed(3)
  if (delay !== undefined) lines.push(`eld p50=${ms(50)} p99=${ms(99)} p999=${ms(99.9)} max=${(delay.max / 1e6).toFixed(3)}`)
  const young = getHeapSpaceStatistics().find((space) => space.space_name === "new_space")
  if (young !== undefined) lines.push(`new_space size=${young.space_size} used=${young.space_used_size}`)
  writeFileSync(out, lines.join("\n") + "\n")
})
