/**
 * Smoke test of the benchmark harness (bench/): a --quick run against Aedes
 * only (always installed as a dev dependency) must finish and write a JSON
 * result with every scenario and no lost, duplicated or reordered message,
 * a loss % beside every QoS 0 rate, and sane fields for the isolation
 * scenarios (large-packets, slow-consumer, auth-flood). Scenarios for ours only (scale-out: a
 * cluster on Redis, which Aedes has no equivalent of) must be reported as not run for Aedes.
 * No timing assertions: this checks the harness, not any broker's speed.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { SCENARIOS } from "../../bench/scenarios/index.ts"
import { scaleOut } from "../../bench/scenarios/scale-out.ts"

/** the QoS 0 throughput scenarios: unpaced publishers, a loss % beside the rate */
const QOS0 = ["fanin-q0", "fanin-q0-32", "fanout-q0"]

const ROOT = fileURLToPath(new URL("../..", import.meta.url))

/** A node that runs .ts files natively (>= 22.6): this one, else the pinned one. */
const nodeBinary = (): string => {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number)
  if (major > 22 || (major === 22 && minor >= 6)) return process.execPath
  return join(ROOT, "node_modules/.bin/node")
}

const runHarness = (args: ReadonlyArray<string>, timeoutMs: number): Promise<{ code: number | null; output: string }> =>
  new Promise((resolve) => {
    const child = spawn(nodeBinary(), [join(ROOT, "bench/run.ts"), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr.on("data", (d: Buffer) => (output += d.toString()))
    // SIGTERM lets the harness stop the brokers it started
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs)
    child.once("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })

interface Summary {
  readonly runs: number
  readonly failedRuns: number
  readonly lost: number
  readonly duplicates: number
  readonly reordered: number
  readonly expected: number
  readonly medians: Record<string, number | null>
  readonly notes: ReadonlyArray<string>
}

interface Run {
  readonly ok: boolean
  readonly result?: { readonly metrics: Record<string, number | null>; readonly extra: Record<string, unknown> }
}

interface Result {
  readonly mode: string
  readonly machine: Record<string, unknown>
  readonly scenarios: ReadonlyArray<{
    readonly id: string
    readonly summary: { readonly aedes?: Summary }
    readonly runs: { readonly aedes?: ReadonlyArray<Run> }
  }>
  readonly table: ReadonlyArray<{ readonly label: string; readonly unit: string; readonly values: Record<string, number | null> }>
}

describe("benchmark harness", () => {
  it("runs every scenario in --quick mode against Aedes: nothing lost but QoS 0, which has its loss %", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-smoke-"))
    const out = join(dir, "result.json")
    try {
      const { code, output } = await runHarness(["--quick", "--brokers", "aedes", "--out", out], 100_000)
      expect(code, output).toBe(0)
      expect(existsSync(out), output).toBe(true)
      const result = JSON.parse(readFileSync(out, "utf8")) as Result
      expect(result.mode).toBe("quick")
      expect(typeof result.machine["node"]).toBe("string")
      expect(result.scenarios.map((s) => s.id)).toEqual(SCENARIOS.map((s) => s.id))
      expect(result.table.length).toBeGreaterThan(0)
      for (const s of result.scenarios) {
        const a = s.summary.aedes
        expect(a, `${s.id}: no aedes summary`).toBeDefined()
        const only = SCENARIOS.find((x) => x.id === s.id)!.only
        if (only !== undefined && !only.includes("aedes")) {
          // not run, and the report says why
          expect({ id: s.id, runs: a!.runs, aedesRuns: s.runs.aedes }).toEqual({ id: s.id, runs: 0, aedesRuns: undefined })
          expect(a!.notes.join(" "), s.id).toMatch(/not run: no equivalent/)
          continue
        }
        expect(a!.runs, s.id).toBe(1)
        expect(a!.failedRuns, `${s.id} failed\n${output}`).toBe(0)
        expect(a!.expected, s.id).toBeGreaterThan(0)
        // QoS 0 may be shed (or still queued when the quick drain limit ends the run): loss % shows it
        const qos0 = QOS0.includes(s.id)
        expect({ id: s.id, lost: qos0 ? 0 : a!.lost, duplicates: a!.duplicates, reordered: a!.reordered }).toEqual({
          id: s.id,
          lost: 0,
          duplicates: 0,
          reordered: 0
        })
        for (const [k, v] of Object.entries(a!.medians)) expect(Number.isFinite(v), `${s.id}.${k} = ${v}`).toBe(true)
      }

      const scenario = (id: string) => result.scenarios.find((s) => s.id === id)!
      const run = (id: string) => scenario(id).runs.aedes![0]!.result!

      // a loss % row right after every QoS 0 throughput row
      const labels = result.table.map((r) => r.label)
      for (const id of QOS0) {
        const s = scenario(id).summary.aedes!
        expect(s.medians["lossPct"], id).toBeCloseTo((s.lost / s.expected) * 100, 6)
      }
      for (let i = 0; i < labels.length; i++) {
        if (labels[i]!.endsWith(" loss")) expect(labels[i - 1], "loss row follows its rate").toBe(labels[i]!.slice(0, -5))
      }
      // scale-out has a loss row for each of its 6 QoS 0 rates (ours only: n/a for Aedes)
      const scaleOutLoss = scaleOut.metrics.filter((m) => m.label.endsWith(" loss"))
      expect(scaleOutLoss).toHaveLength(6)
      expect(labels.filter((l) => l.endsWith(" loss")).length, labels.join(" | ")).toBe(QOS0.length + scaleOutLoss.length)
      for (const m of scaleOut.metrics) {
        const row = result.table.find((r) => r.label === m.label)
        expect(row, m.label).toBeDefined()
        expect(row!.values["aedes"] ?? null, m.label).toBeNull()
      }

      const large = run("large-packets")
      expect(large.extra["largeBytes"]).toBe(1_000_000)
      expect(large.extra["bigPubacks"] as number).toBeGreaterThan(0)
      expect(large.extra["samplesAlone"] as number).toBeGreaterThan(0)
      expect(large.extra["samplesWithBig"] as number).toBeGreaterThan(0)
      expect(large.metrics["pubackMs"]!).toBeGreaterThan(0)
      expect(large.metrics["p99Alone"]!).toBeGreaterThanOrEqual(large.metrics["p50Alone"]!)
      expect(large.metrics["p99Big"]!).toBeGreaterThanOrEqual(large.metrics["p50Big"]!)
      expect(large.metrics["p99Ratio"]!).toBeCloseTo(large.metrics["p99Big"]! / large.metrics["p99Alone"]!, 6)

      const slow = run("slow-consumer")
      expect(slow.extra["sent"]).toBe(2 * 2_000)
      expect(slow.metrics["rateAlone"]!).toBeGreaterThan(0)
      expect(slow.metrics["rateStalled"]!).toBeGreaterThan(0)
      expect(slow.metrics["rateRatio"]!).toBeCloseTo(slow.metrics["rateStalled"]! / slow.metrics["rateAlone"]!, 6)
      expect(Number.isFinite(slow.metrics["rssGrowthMb"])).toBe(true)
      expect(slow.metrics["healthyLostAlone"]).toBe(0)
      expect(slow.metrics["healthyLostStalled"]).toBe(0)

      // churn: every cycle completed, RSS read after each of the 3 rounds, Aedes' heap read through the probe
      const churned = run("churn")
      expect(churned.extra["failed"]).toBe(0)
      const rssRounds = String(churned.extra["rssAfterRoundsKb"]).split(" ").map(Number)
      expect(rssRounds).toHaveLength(3)
      expect(churned.metrics["rssGrowth"]!).toBeCloseTo(rssRounds[2]! / rssRounds[0]!, 6)
      expect(churned.extra["heapBeforeKb"] as number).toBeGreaterThan(0)
      const heapRounds = String(churned.extra["heapAfterRoundsKb"]).split(" ").map(Number)
      expect(heapRounds.every((kb) => kb > 0)).toBe(true)
      expect(churned.metrics["heapGrowth"]!).toBeCloseTo(heapRounds[2]! / heapRounds[0]!, 2)
      expect(churned.metrics["cyclesPerSecond"]!).toBeGreaterThan(0)

      // auth-flood: both phases sampled, the flood ran and every wrong password was refused
      const auth = run("auth-flood")
      expect(auth.extra["samplesAlone"] as number).toBeGreaterThan(0)
      expect(auth.extra["samplesFlood"] as number).toBeGreaterThan(0)
      expect(auth.extra["p50Alone"] as number).toBeLessThanOrEqual(auth.metrics["p99Alone"]!)
      expect(auth.metrics["p99Alone"]!).toBeLessThanOrEqual(auth.extra["p999Alone"] as number)
      expect(auth.extra["p50Flood"] as number).toBeLessThanOrEqual(auth.metrics["p99Flood"]!)
      expect(auth.metrics["p99Flood"]!).toBeLessThanOrEqual(auth.extra["p999Flood"] as number)
      expect(auth.metrics["p99Ratio"]!).toBeCloseTo(auth.metrics["p99Flood"]! / auth.metrics["p99Alone"]!, 6)
      expect(auth.extra["floodAttempted"] as number).toBeGreaterThan(0)
      expect(auth.extra["floodConnacks"] as number).toBeGreaterThan(0)
      expect(auth.extra["floodConnacks"] as number).toBeLessThanOrEqual(auth.extra["floodAttempted"] as number)
      expect(auth.extra["floodAccepted"]).toBe(0)
      expect(auth.metrics["badConnackRate"]!).toBeGreaterThan(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
