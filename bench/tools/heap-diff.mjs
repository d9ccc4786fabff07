// Compares two heap snapshots of one process (e.g. the ones `BENCH_HEAP_SNAPSHOTS=<dir>` makes the
// churn scenario's heap probe write before and after the rounds):
//
//   node bench/tools/heap-diff.mjs before.heapsnapshot after.heapsnapshot [N] [rows]
//
// prints the change in self size and object count per (V8 type, constructor / name), largest
// first, divided by N (e.g. the number of connections, to read "per connection"). Growth in
// closures, contexts or plain objects is retained state; growth in code, shapes (system / Map) and
// WeakArrayLists is V8 warming up (compiled code, inline caches), which stops after the first round.
// Plain JavaScript, no dependencies; a 20 MB snapshot needs ~1 GB (run node with
// --max-old-space-size=4000 for large ones).
import { readFileSync } from "node:fs"

const aggregate = (file) => {
  const snapshot = JSON.parse(readFileSync(file, "utf8"))
  const meta = snapshot.snapshot.meta
  const fields = meta.node_fields.length
  const types = meta.node_types[0]
  const [type, name, size] = ["type", "name", "self_size"].map((field) => meta.node_fields.indexOf(field))
  const byKey = new Map()
  for (let i = 0; i < snapshot.nodes.length; i += fields) {
    const t = types[snapshot.nodes[i + type]]
    // strings, numbers and code are named by their contents: one row each
    const n = t.includes("string") ? "(string)" : t === "number" ? "(number)" : t === "code" ? "(code)" : snapshot.strings[snapshot.nodes[i + name]].slice(0, 60)
    const key = `${t} | ${n}`
    const entry = byKey.get(key) ?? { count: 0, size: 0 }
    entry.count++
    entry.size += snapshot.nodes[i + size]
    byKey.set(key, entry)
  }
  return byKey
}

const [beforeFile, afterFile, per = "1", rows = "40"] = process.argv.slice(2)
if (beforeFile === undefined || afterFile === undefined) {
  process.stderr.write("usage: node bench/tools/heap-diff.mjs before.heapsnapshot after.heapsnapshot [N] [rows]\n")
  process.exit(2)
}
const before = aggregate(beforeFile)
const after = aggregate(afterFile)
const n = Number(per)
const diff = [...new Set([...before.keys(), ...after.keys()])].map((key) => {
  const a = before.get(key) ?? { count: 0, size: 0 }
  const b = after.get(key) ?? { count: 0, size: 0 }
  return { key, count: b.count - a.count, size: b.size - a.size }
})
diff.sort((x, y) => Math.abs(y.size) - Math.abs(x.size))
const total = diff.reduce((sum, row) => sum + row.size, 0)
process.stdout.write(`self size ${(total / 1024).toFixed(0)} KB in all, ${(total / n).toFixed(0)} B per unit (N = ${n})\n`)
for (const row of diff.slice(0, Number(rows))) {
  process.stdout.write(`${(row.size / n).toFixed(0).padStart(9)} B ${(row.count / n).toFixed(2).padStart(9)} objects  ${row.key}\n`)
}
