/**
 * Benchmark harness entry point: `npm run bench` (full) or
 * `npm run bench -- --quick` (smoke run). See bench/README.md.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { dirname, join, resolve } from "node:path"
import { ALL_BROKERS, BROKERS, ROOT } from "./lib/brokers.ts"
import type { Availability, BrokerName, RunningBroker } from "./lib/brokers.ts"
import { withTimeout } from "./lib/client.ts"
import { closeAll } from "./lib/common.ts"
import { installCleanup } from "./lib/procs.ts"
import { median } from "./lib/stats.ts"
import { buildTable, newScenarioReport, renderIntegrity, renderTable, summarize } from "./lib/report.ts"
import type { RunRecord, ScenarioReport } from "./lib/report.ts"
import type { Params, RunContext, RunResult, Scenario } from "./lib/types.ts"
import { SCENARIOS } from "./scenarios/index.ts"
import { lowerHelperThreads } from "../src/entry/HelperThreads.ts"

/** median "other" CPU (% of one core) above which the run is flagged as disturbed */
const DISTURBED_OTHER_CPU = 25

const README_START = "<!-- last-run -->"
const README_END = "<!-- /last-run -->"

const FULL: Params = {
  quick: false,
  reps: 3,
  warmupMs: 1_000,
  durationMs: 4_000,
  payload: 64,
  window: 64,
  batch: 128,
  backlog: 20_000,
  fanInPublishers: 8,
  fanInPublishersHigh: 32,
  fanOutSubscribers: 50,
  latencyRate: 2_000,
  idleConnections: 2_000,
  churnCycles: 5_000,
  churnParallel: 50,
  sessions: 100,
  sessionMessages: 100,
  largeBytes: 16_000_000,
  largeProbes: 10,
  probeIntervalMs: 20,
  largePhaseMs: 5_000,
  slowMessages: 200_000,
  slowPayload: 1_024,
  slowHealthy: 3,
  slowPublishers: 2,
  authPhaseMs: 5_000,
  authFloodRate: 2_000,
  authTimeoutMs: 1_000,
  drainTimeoutMs: 30_000,
  stallMs: 3_000
}

const QUICK: Params = {
  ...FULL,
  quick: true,
  reps: 1,
  warmupMs: 100,
  durationMs: 300,
  idleConnections: 200,
  churnCycles: 300,
  sessions: 10,
  sessionMessages: 10,
  largeBytes: 1_000_000,
  largePhaseMs: 300,
  slowMessages: 2_000,
  authPhaseMs: 500,
  // unpaced QoS 0 can leave a broker with a long queue; a smoke run need not wait it out
  drainTimeoutMs: 5_000,
  stallMs: 3_000
}

const USAGE = `usage: node bench/run.ts [options]      (npm run bench -- [options])

  --quick                 smoke run: every scenario, tiny sizes, 1 repetition
  --brokers a,b,...       subset of: ${ALL_BROKERS.join(",")} (default: all)
  --scenarios a,b,...     subset of: ${SCENARIOS.map((s) => s.id).join(",")}
  --reps N                repetitions per scenario and broker (default 3, quick 1)
  --duration S            measured seconds per throughput/latency run (default 4)
  --warmup S              warm-up seconds before measuring (default 1)
  --payload BYTES         PUBLISH payload size, >= 16 (default 64)
  --idle N                idle connections (default 2000, quick 200)
  --churn N               churn: connect-subscribe-publish-disconnect cycles per round, 3 rounds
                          (default 5000, quick 300; issue 16 states 20000)
  --sessions N            persistent-session clients (default 100, quick 10)
  --session-msgs M        QoS 1 messages queued per offline client (default 100, quick 10)
  --backlog N             QoS 1 generator cap on deliveries owed to subscribers (default 20000;
                          QoS 0 publishers are never paced beyond TCP backpressure)
  --large-bytes BYTES     large-packets: payload of each big QoS 1 PUBLISH (default 16000000, quick 1000000)
  --slow-msgs N           slow-consumer: QoS 1 messages per phase (default 200000, quick 2000)
  --out FILE              JSON output (default bench/results/latest.json)
  --no-build              do not run the build for "ours" (use the existing dist/)
  --strict                exit with status 1 if a run failed or any message was lost,
                          duplicated or reordered (default: always 0 once results are written)
  --update-readme         write the printed tables into the "Last run" section of bench/README.md
  -h, --help              this text

Mosquitto missing: full mode exits with status 1 and prints the install command;
--quick skips it with a warning.`

interface Cli {
  params: Params
  brokers: Array<BrokerName>
  scenarios: Array<Scenario>
  out: string
  build: boolean
  strict: boolean
  updateReadme: boolean
}

const fail = (msg: string): never => {
  process.stderr.write(`bench: ${msg}\n\n${USAGE}\n`)
  process.exit(2)
}

const parseCli = (argv: ReadonlyArray<string>): Cli => {
  const quick = argv.includes("--quick")
  const p: { -readonly [K in keyof Params]: Params[K] } = { ...(quick ? QUICK : FULL) }
  let brokers: Array<BrokerName> = [...ALL_BROKERS]
  let scenarios: Array<Scenario> = [...SCENARIOS]
  let out = join(ROOT, "bench/results/latest.json")
  let build = true
  let strict = false
  let updateReadme = false
  const num = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v)
    if (v === undefined || !Number.isFinite(n) || n < min) return fail(`${flag} needs a number >= ${min}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const v = argv[i + 1]
    switch (a) {
      case "--quick":
        break
      case "-h":
      case "--help":
        process.stdout.write(`${USAGE}\n`)
        process.exit(0)
        break
      case "--brokers": {
        const names = (v ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0)
        const bad = names.filter((n) => !(ALL_BROKERS as ReadonlyArray<string>).includes(n))
        if (names.length === 0 || bad.length > 0) fail(`unknown broker(s): ${bad.join(",") || "(none)"}`)
        brokers = ALL_BROKERS.filter((b) => names.includes(b))
        i++
        break
      }
      case "--scenarios": {
        const ids = (v ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0)
        const bad = ids.filter((id) => !SCENARIOS.some((s) => s.id === id))
        if (ids.length === 0 || bad.length > 0) fail(`unknown scenario(s): ${bad.join(",") || "(none)"}`)
        scenarios = SCENARIOS.filter((s) => ids.includes(s.id))
        i++
        break
      }
      case "--reps":
        p.reps = Math.floor(num(a, v, 1))
        i++
        break
      case "--duration":
        p.durationMs = Math.round(num(a, v, 0.05) * 1000)
        i++
        break
      case "--warmup":
        p.warmupMs = Math.round(num(a, v, 0) * 1000)
        i++
        break
      case "--payload":
        p.payload = Math.floor(num(a, v, 16))
        i++
        break
      case "--idle":
        p.idleConnections = Math.floor(num(a, v, 1))
        i++
        break
      case "--churn":
        p.churnCycles = Math.floor(num(a, v, 1))
        i++
        break
      case "--sessions":
        p.sessions = Math.floor(num(a, v, 1))
        i++
        break
      case "--session-msgs":
        p.sessionMessages = Math.floor(num(a, v, 1))
        i++
        break
      case "--large-bytes":
        p.largeBytes = Math.floor(num(a, v, 1024))
        i++
        break
      case "--slow-msgs":
        p.slowMessages = Math.floor(num(a, v, 1))
        i++
        break
      case "--backlog":
        p.backlog = Math.floor(num(a, v, 1))
        i++
        break
      case "--out":
        if (v === undefined) fail("--out needs a path")
        out = resolve(v!)
        i++
        break
      case "--no-build":
        build = false
        break
      case "--strict":
        strict = true
        break
      case "--update-readme":
        updateReadme = true
        break
      default:
        fail(`unknown option ${a}`)
    }
  }
  return { params: p, brokers, scenarios, out, build, strict, updateReadme }
}

const machine = (versions: Partial<Record<BrokerName, Availability>>): Record<string, string | number> => {
  let cpuModel = os.cpus()[0]?.model ?? "unknown"
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))
    if (m !== null) cpuModel = m[1]!.trim()
  } catch {
    // not Linux
  }
  return {
    cpu: cpuModel,
    cores: os.availableParallelism(),
    memoryGb: Math.round(os.totalmem() / 1024 ** 3),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    mosquitto: versions.mosquitto?.version ?? "not used",
    aedes: versions.aedes?.version ?? "not used",
    ours: versions.ours?.version ?? "not used"
  }
}

const describeResult = (s: Scenario, r: RunResult): string => {
  const main = s.metrics.map((m) => `${m.key}=${formatNum(r.metrics[m.key])} ${m.unit}`).join(" ")
  const i = r.integrity
  return `${main}  lost ${i.lost} dup ${i.duplicates} reord ${i.reordered}  cpu gen ${pct(r.generatorCpu)} broker ${pct(r.brokerCpu)} other ${pct(r.otherCpu)}`
}

const pct = (x: number): string => (Number.isFinite(x) ? `${Math.round(x)}%` : "n/a")

const formatNum = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x) ? "n/a" : Math.abs(x) >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(3)

const runOnce = async (s: Scenario, broker: RunningBroker, params: Params): Promise<RunResult> => {
  const ctx: RunContext = {
    broker,
    params,
    clients: new Set(),
    aborted: false,
    log: (line) => process.stdout.write(`    ${line}\n`)
  }
  const limit = params.warmupMs + params.durationMs + (s.timeoutMs ?? 90_000)
  try {
    const result = await withTimeout(s.run(ctx), limit, `${s.id} on ${broker.name}`)
    if (broker.proc.exited) throw new Error(`broker exited during the run (code ${broker.proc.exitCode}, signal ${broker.proc.exitSignal})`)
    return result
  } catch (e) {
    ctx.aborted = true
    await closeAll(ctx)
    const tail = broker.proc.exited ? broker.proc.logTail(600) : ""
    throw new Error(`${e instanceof Error ? e.message : String(e)}${tail ? ` | broker output: ${tail}` : ""}`)
  }
}

const main = async (): Promise<number> => {
  // The harness is the load generator and the latency clients: its own V8 compiler and GC helper
  // threads must not take a core from the broker being measured (on 2 cores they did, hitting
  // every broker's p99.9). At nice 19, as the broker's own (src/entry/HelperThreads.ts), they get
  // idle cycles only. BENCH_HARNESS_NICE=0 runs them as before.
  if (process.env["BENCH_HARNESS_NICE"] !== "0") lowerHelperThreads()
  installCleanup()
  const cli = parseCli(process.argv.slice(2))
  const { params } = cli
  const log = (s: string): void => void process.stdout.write(`${s}\n`)
  const started = new Date()
  log(`MQTT broker benchmark (${params.quick ? "quick" : "full"} mode): brokers ${cli.brokers.join(", ")}; ${cli.scenarios.length} scenarios × ${params.reps} rep(s)`)

  // --- prepare brokers --------------------------------------------------------
  const availability: Partial<Record<BrokerName, Availability>> = {}
  const active: Array<BrokerName> = []
  // peers first: a missing mosquitto should fail fast, before building ours
  const prepareOrder = [...cli.brokers].sort((x, y) => (x === "ours" ? 1 : 0) - (y === "ours" ? 1 : 0))
  for (const b of prepareOrder) {
    const a = await BROKERS[b].prepare({ build: cli.build, log: (s) => log(`  ${s}`) })
    availability[b] = a
    if (a.ok) {
      active.push(b)
      continue
    }
    log(`  ${b}: unavailable: ${a.reason ?? "?"}`)
    if (a.fix !== undefined) {
      log(`  fix: ${a.fix}`)
      if (b === "mosquitto" && !params.quick) {
        log("bench: a full run needs mosquitto as a peer; install it (command above) or pass --quick / --brokers to leave it out")
        process.exit(1)
      }
    }
  }
  const m = machine(availability)
  log(`machine: ${m["cpu"]}, ${m["cores"]} cores, ${m["memoryGb"]} GB, ${m["os"]}`)
  log(`versions: node ${m["node"]}, mosquitto ${m["mosquitto"]}, aedes ${m["aedes"]}, ours ${m["ours"]}`)
  if (active.length === 0) {
    log("bench: no broker available")
    process.exit(1)
  }

  // --- run ---------------------------------------------------------------------
  const reports: Array<ScenarioReport> = []
  const deadBrokers = new Set<BrokerName>()
  const startFailures: Partial<Record<BrokerName, number>> = {}
  for (const s of cli.scenarios) {
    log(`\n== ${s.title}: ${s.description}`)
    const rep = newScenarioReport(s)
    reports.push(rep)
    for (let r = 0; r < params.reps; r++) {
      // rotate the order every repetition: ABC, BCA, CAB, ...
      const order = active.map((_, i) => active[(i + r) % active.length]!)
      for (let position = 0; position < order.length; position++) {
        const b = order[position]!
        if (s.only !== undefined && !s.only.includes(b)) {
          if (r === 0) log(`  ${b.padEnd(9)} skipped: no equivalent (${s.id} is for ${s.only.join(", ")} only)`)
          continue
        }
        const records = (rep.runs[b] ??= [])
        if (deadBrokers.has(b)) {
          records.push({ rep: r, position, ok: false, error: "skipped: broker failed to start twice", seconds: 0 })
          continue
        }
        const t0 = performance.now()
        let broker: RunningBroker | undefined
        try {
          broker = await BROKERS[b].start(s.brokerProfile)
          startFailures[b] = 0
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e)
          startFailures[b] = (startFailures[b] ?? 0) + 1
          if ((startFailures[b] ?? 0) >= 2) deadBrokers.add(b)
          log(`  [${r + 1}/${params.reps}] ${b.padEnd(9)} FAILED TO START: ${msg}`)
          records.push({ rep: r, position, ok: false, error: `start: ${msg}`, seconds: (performance.now() - t0) / 1000 })
          continue
        }
        try {
          const result = await runOnce(s, broker, params)
          records.push({ rep: r, position, ok: true, result, seconds: (performance.now() - t0) / 1000 })
          log(`  [${r + 1}/${params.reps}] ${b.padEnd(9)} ${describeResult(s, result)}`)
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e)
          records.push({ rep: r, position, ok: false, error: msg, seconds: (performance.now() - t0) / 1000 })
          log(`  [${r + 1}/${params.reps}] ${b.padEnd(9)} FAILED: ${msg}`)
        } finally {
          await broker.stop()
        }
      }
    }
    summarize(rep, cli.brokers)
  }

  // --- report -----------------------------------------------------------------
  const table = buildTable(reports, cli.brokers)
  const others = reports.flatMap((r) =>
    Object.values(r.runs).flatMap((runs) => (runs ?? []).flatMap((x) => (x.result === undefined ? [] : [x.result.otherCpu])))
  )
  const otherLoad = median(others)
  const disturbed = otherLoad > DISTURBED_OTHER_CPU
  const machineLine = `machine: ${m["cpu"]}, ${m["cores"]} cores, ${m["memoryGb"]} GB, ${m["os"]}; node ${m["node"]}; ` +
    `mosquitto ${m["mosquitto"]}; aedes ${m["aedes"]}; ours ${m["ours"]}`
  const reportText = [
    machineLine,
    renderTable(table, cli.brokers, params.reps),
    "",
    renderIntegrity(reports, cli.brokers),
    ...(disturbed
      ? [
        "",
        `WARNING: other load used a median ${Math.round(otherLoad)}% of a core during the measured windows ` +
        "(see the 'other' CPU column): the figures are disturbed; rerun on an idle machine."
      ]
      : [])
  ].join("\n")
  log("")
  log(reportText)

  const finished = new Date()
  const json = {
    schema: 1,
    mode: params.quick ? "quick" : "full",
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    seconds: (finished.getTime() - started.getTime()) / 1000,
    params,
    machine: m,
    brokers: Object.fromEntries(cli.brokers.map((b) => [b, availability[b] ?? { ok: false, version: "?" }])),
    otherCpuMedian: otherLoad,
    disturbed,
    ratioConvention: ">1 means ours is better: ours/peer for higher-is-better metrics, peer/ours for lower-is-better metrics",
    table,
    scenarios: reports
  }
  mkdirSync(dirname(cli.out), { recursive: true })
  writeFileSync(cli.out, `${JSON.stringify(json, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2)}\n`)
  log(`\nwrote ${cli.out} (${json.seconds.toFixed(1)} s)`)
  if (cli.updateReadme) {
    const section = [
      README_START,
      `Recorded with \`npm run bench${params.quick ? " -- --quick" : ""}\` on ${started.toISOString().slice(0, 10)} ` +
      `(${params.quick ? "quick" : "full"} mode, ${json.seconds.toFixed(0)} s; brokers: ${cli.brokers.join(", ")}).`,
      "",
      "```text",
      reportText,
      "```",
      README_END
    ].join("\n")
    const readmePath = join(ROOT, "bench/README.md")
    const readme = readFileSync(readmePath, "utf8")
    const a = readme.indexOf(README_START)
    const b = readme.indexOf(README_END)
    if (a < 0 || b < a) log(`--update-readme: markers ${README_START} ... ${README_END} not found in ${readmePath}`)
    else {
      writeFileSync(readmePath, readme.slice(0, a) + section + readme.slice(b + README_END.length))
      log(`updated the "Last run" section of ${readmePath}`)
    }
  }
  if (!cli.strict) return 0
  const problems = reports.flatMap((r) =>
    cli.brokers.flatMap((b) => {
      const s = r.summary[b]
      if (s === undefined || !availability[b]?.ok) return []
      const bad = s.failedRuns > 0 || s.lost > 0 || s.duplicates > 0 || s.reordered > 0
      return bad ? [`${r.id}/${b}`] : []
    })
  )
  if (problems.length > 0) log(`--strict: failed runs or integrity errors in ${problems.join(", ")}`)
  return problems.length > 0 ? 1 : 0
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.stack : String(e)}\n`)
    process.exit(1)
  }
)
