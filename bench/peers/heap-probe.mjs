// Preloaded into the Node brokers (ours, Aedes) by the churn scenario's "heap" profile:
//   node --expose-gc --import bench/peers/heap-probe.mjs <broker> ...   with BENCH_HEAP_FILE=<file>
// On SIGUSR2 it runs a full garbage collection and writes the heap statistics as JSON to that
// file (written beside it, then renamed, so the harness never reads half of it): the live heap,
// which RSS alone cannot tell apart from garbage not yet collected. With BENCH_HEAP_SNAPSHOTS=<dir>
// it also writes a heap snapshot there on each signal, for a snapshot diff (Chrome DevTools,
// Memory tab, "Comparison"). Plain JavaScript: a .ts preload would load Node's TypeScript
// stripper into the broker and add ~18 MB to the RSS being measured.
import { renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from "node:v8"

const file = process.env.BENCH_HEAP_FILE
const snapshots = process.env.BENCH_HEAP_SNAPSHOTS
let taken = 0

if (file) {
  process.on("SIGUSR2", () => {
    globalThis.gc?.()
    const heap = getHeapStatistics()
    const snapshot = snapshots ? writeHeapSnapshot(join(snapshots, `heap-${process.pid}-${taken++}.heapsnapshot`)) : undefined
    const result = {
      usedHeapKb: heap.used_heap_size / 1024,
      totalHeapKb: heap.total_heap_size / 1024,
      externalKb: heap.external_memory / 1024,
      physicalHeapKb: heap.total_physical_size / 1024,
      mallocedKb: heap.malloced_memory / 1024,
      arrayBuffersKb: process.memoryUsage().arrayBuffers / 1024,
      spacesKb: Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, Math.round(s.space_size / 1024)])),
      gcExposed: typeof globalThis.gc === "function",
      snapshot
    }
    writeFileSync(`${file}.tmp`, JSON.stringify(result))
    renameSync(`${file}.tmp`, file)
  })
}
