/**
 * Smoke test of the benchmark harness (bench/): a --quick run against Aedes
 * only (always installed as a dev dependency) must finish and write a JSON
 * result with every scenario and no lost, duplicated or reordered message.
 * No timing assertions: this checks the harness, not any broker's speed.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { SCENARIOS } from "../../bench/scenarios/index.ts"

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
}

interface Result {
  readonly mode: string
  readonly machine: Record<string, unknown>
  readonly scenarios: ReadonlyArray<{ readonly id: string; readonly summary: { readonly aedes?: Summary } }>
  readonly table: ReadonlyArray<unknown>
}

describe("benchmark harness", () => {
  it("runs every scenario in --quick mode against Aedes with zero loss", async () => {
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
        expect(a!.runs, s.id).toBe(1)
        expect(a!.failedRuns, `${s.id} failed\n${output}`).toBe(0)
        expect(a!.expected, s.id).toBeGreaterThan(0)
        expect({ id: s.id, lost: a!.lost, duplicates: a!.duplicates, reordered: a!.reordered }).toEqual({
          id: s.id,
          lost: 0,
          duplicates: 0,
          reordered: 0
        })
        for (const [k, v] of Object.entries(a!.medians)) expect(Number.isFinite(v), `${s.id}.${k} = ${v}`).toBe(true)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
