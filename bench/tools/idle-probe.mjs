// Where the memory of an idle connection goes (issue 16): starts the built broker
// (dist/start/main.js) with the heap probe, connects N raw MQTT 3.1.1 clients (clean session,
// keepalive 0) in waves of 100 as the `idle-conns` bench scenario does, and prints per connection:
//   rss       VmRSS growth 1 s after the last CONNACK (what `idle-conns` reports)
//   rssGc     VmRSS growth after a full GC (the garbage the handshakes left, given back)
//   heap      live heap growth after a full GC
//   external  external memory growth (ArrayBuffers and native objects V8 is told about)
//
//   node bench/tools/idle-probe.mjs [N=5000] [--wait S] [--snapshots DIR] [--node-flag FLAG ...] [--broker-flag FLAG ...]
//
// With --snapshots it writes heap snapshots before and after (compare them with heap-diff.mjs).
// `--node-flag --max-semi-space-size=N` caps the young generation (bench/README.md "Footprint").
// Plain JavaScript, run with the pinned Node (node_modules/.bin/node), no build step of its own.
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
const args = process.argv.slice(2)
let n = 5000
let snapshots
let waitS = 0
const nodeFlags = []
const brokerFlags = []
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--snapshots") snapshots = args[++i]
  else if (args[i] === "--wait") waitS = Number(args[++i])
  else if (args[i] === "--node-flag") nodeFlags.push(args[++i])
  else if (args[i] === "--broker-flag") brokerFlags.push(args[++i])
  else n = Number(args[i])
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
/** RSS of the process's mappings by kind: the brk heap (malloc), anonymous (V8 pages, malloc arenas, thread stacks), files. */
const smaps = (pid) => {
  const out = { brk: 0, anon: 0, file: 0 }
  let kind = "anon"
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line)
    if (m) kind = m[1] === "[heap]" ? "brk" : m[1] === "" ? "anon" : "file"
    else if (line.startsWith("Rss:")) out[kind] += Number(line.split(/\s+/)[1])
  }
  return out
}
const statusKb = (pid, key = "VmRSS") => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith(`${key}:`))
  return Number(line.split(/\s+/)[1])
}

const freePort = () =>
  new Promise((r) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address()
      s.close(() => r(port))
    })
  })

const dir = mkdtempSync(join(tmpdir(), "idle-probe-"))
const heapFile = join(dir, "heap.json")
const port = await freePort()
const broker = spawn(
  process.execPath,
  [...nodeFlags, "--expose-gc", "--import", join(ROOT, "bench/peers/heap-probe.mjs"), join(ROOT, "dist/start/main.js"),
    "--port", String(port), "--host", "127.0.0.1", ...(brokerFlags.includes("--log-level") ? [] : ["--log-level", "warn"]), ...brokerFlags],
  { env: { ...process.env, NODE_ENV: "production", BENCH_HEAP_FILE: heapFile, ...(snapshots ? { BENCH_HEAP_SNAPSHOTS: snapshots } : {}) }, stdio: ["ignore", process.env.IDLE_PROBE_STDOUT ? "inherit" : "ignore", "inherit"] }
)

const heap = async () => {
  rmSync(heapFile, { force: true })
  process.kill(broker.pid, "SIGUSR2")
  while (!existsSync(heapFile)) await sleep(20)
  return JSON.parse(readFileSync(heapFile, "utf8"))
}

// CONNECT, MQTT 3.1.1, clean session, keepalive 0
const connectPacket = (clientId) => {
  const id = Buffer.from(clientId)
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 0, id.length >> 8, id.length & 0xff]), id])
  return Buffer.concat([Buffer.from([0x10, body.length]), body])
}

const connect = (i) =>
  new Promise((res, rej) => {
    const socket = net.connect({ port, host: "127.0.0.1" }, () => socket.write(connectPacket(`idle${i}`)))
    socket.once("data", (d) => (d[0] === 0x20 && d[3] === 0 ? res(socket) : rej(new Error("refused"))))
    socket.once("error", rej)
  })

for (let tries = 0; ; tries++) {
  try {
    await connect(-1).then((s) => s.destroy())
    break
  } catch (e) {
    if (tries > 150) throw e
    await sleep(100)
  }
}
await sleep(1000)
const before = { rss: statusKb(broker.pid), maps: smaps(broker.pid), ...(await heap()) }
before.rssGc = statusKb(broker.pid)
const sockets = []
const t0 = performance.now()
for (let start = 0; start < n; start += 100) {
  const wave = []
  for (let i = start; i < Math.min(n, start + 100); i++) wave.push(connect(i))
  sockets.push(...(await Promise.all(wave)))
}
const connectMs = performance.now() - t0
await sleep(1000)
const rss = statusKb(broker.pid)
const maps = smaps(broker.pid)
// --wait S: VmRSS every second for S more seconds (does the idle broker give memory back by itself?)
const later = []
for (let s = 1; s <= waitS; s++) {
  await sleep(1000)
  later.push(((statusKb(broker.pid) - before.rss) / n).toFixed(1))
}
const after = await heap()
await sleep(200)
const rssGc = statusKb(broker.pid)
const per = (a, b) => ((a - b) / n).toFixed(2)
process.stdout.write(
  `n=${n} rss ${per(rss, before.rss)} KB/conn, rssGc ${per(rssGc, before.rssGc)}, heap ${per(after.usedHeapKb, before.usedHeapKb)}, ` +
    `external ${per(after.externalKb, before.externalKb)}${later.length > 0 ? ` [later: ${later.join(" ")}]` : ""} (rss ${before.rss} -> ${rss} KB, after GC ${rssGc} KB; heap ${before.usedHeapKb.toFixed(0)} -> ${after.usedHeapKb.toFixed(0)} KB; ` +
    `connect ${connectMs.toFixed(0)} ms)\n  rss growth by mapping KB/conn: brk ${per(maps.brk, before.maps.brk)} anon ${per(maps.anon, before.maps.anon)} file ${per(maps.file, before.maps.file)}; ` +
    `V8 physical ${per(after.physicalHeapKb, before.physicalHeapKb)} KB/conn after GC\n  heap total ${before.totalHeapKb.toFixed(0)} -> ${after.totalHeapKb.toFixed(0)} KB, malloced ${before.mallocedKb.toFixed(0)} -> ${after.mallocedKb.toFixed(0)} KB, ` +
    `spaces before ${JSON.stringify(before.spacesKb)} after ${JSON.stringify(after.spacesKb)}${after.snapshot ? `\nsnapshots: ${before.snapshot} ${after.snapshot}` : ""}\n`
)
for (const s of sockets) s.destroy()
broker.kill("SIGTERM")
await new Promise((r) => broker.once("exit", r))
rmSync(dir, { recursive: true, force: true })
