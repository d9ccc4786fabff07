/**
 * Child-process bookkeeping: every process the harness spawns is registered
 * here and killed on normal exit, on SIGINT/SIGTERM/SIGHUP and on uncaught
 * errors, so no broker outlives the harness (a SIGKILL of the harness itself is
 * the one case we cannot catch; the Aedes peer additionally exits when its
 * stdin pipe closes).
 */
import { execFileSync, spawn } from "node:child_process"
import type { ChildProcess, SpawnOptions } from "node:child_process"
import { appendFileSync, readdirSync, readFileSync } from "node:fs"
import * as net from "node:net"
import { RawClient, sleep } from "./client.ts"

const children = new Set<ChildProcess>()

const killAllSync = (): void => {
  for (const c of children) {
    try {
      c.kill("SIGKILL")
    } catch {
      // already gone
    }
  }
  children.clear()
}

/** Registers a child started elsewhere (e.g. with `fork`) so the cleanup kills it too. */
export const trackChild = (child: ChildProcess): void => {
  children.add(child)
  child.once("exit", () => children.delete(child))
}

let installed = false
export const installCleanup = (): void => {
  if (installed) return
  installed = true
  process.on("exit", killAllSync)
  const signals: ReadonlyArray<[NodeJS.Signals, number]> = [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]]
  for (const [sig, code] of signals) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping brokers\n`)
      killAllSync()
      process.exit(code)
    })
  }
  process.on("uncaughtException", (e) => {
    process.stderr.write(`bench: uncaught ${e.stack ?? String(e)}\n`)
    killAllSync()
    process.exit(1)
  })
  process.on("unhandledRejection", (e) => {
    process.stderr.write(`bench: unhandled rejection ${e instanceof Error ? e.stack : String(e)}\n`)
    killAllSync()
    process.exit(1)
  })
}

export class ManagedProcess {
  readonly child: ChildProcess
  readonly name: string
  exitCode: number | null = null
  exitSignal: NodeJS.Signals | null = null
  exited = false
  private log = ""
  private readonly exitPromise: Promise<void>

  constructor(name: string, command: string, args: ReadonlyArray<string>, options: SpawnOptions) {
    this.name = name
    this.child = spawn(command, [...args], { ...options, stdio: ["pipe", "pipe", "pipe"] })
    children.add(this.child)
    // BENCH_PROCESS_LOG: append every broker's full output to this file (profiling runs)
    const logFile = process.env["BENCH_PROCESS_LOG"]
    const keep = (d: Buffer): void => {
      if (logFile !== undefined) appendFileSync(logFile, d)
      this.log += d.toString("utf8")
      if (this.log.length > 16_384) this.log = this.log.slice(-8_192)
    }
    this.child.stdout?.on("data", keep)
    this.child.stderr?.on("data", keep)
    this.child.stdin?.on("error", () => {})
    this.exitPromise = new Promise<void>((resolve) => {
      this.child.once("error", (e) => {
        this.log += `\nspawn error: ${e.message}`
        this.exited = true
        children.delete(this.child)
        resolve()
      })
      this.child.once("exit", (code, signal) => {
        this.exited = true
        this.exitCode = code
        this.exitSignal = signal
        children.delete(this.child)
        resolve()
      })
    })
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  logTail(chars = 1500): string {
    return this.log.slice(-chars).trim()
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 2_000): Promise<void> {
    if (this.exited) return
    this.child.kill("SIGTERM")
    const t = setTimeout(() => {
      if (!this.exited) this.child.kill("SIGKILL")
    }, graceMs)
    await this.exitPromise
    clearTimeout(t)
  }
}

/** A port that was free a moment ago on 127.0.0.1. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address()
      const port = typeof addr === "object" && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })

/**
 * Waits until an MQTT CONNECT on `port` gets a CONNACK (so the broker really
 * serves, not just listens), polling every 50 ms up to `timeoutMs`. A broker
 * started with authentication on refuses anonymous CONNECTs, hence `credentials`.
 */
export const waitForMqtt = async (
  port: number,
  timeoutMs: number,
  proc: ManagedProcess,
  credentials: { readonly username?: string; readonly password?: string } = {}
): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let last = "not tried"
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`${proc.name} exited (code ${proc.exitCode}, signal ${proc.exitSignal}) before accepting connections`)
    try {
      const { client } = await RawClient.connect(port, { clientId: "bench-probe", clean: true, keepalive: 0, ...credentials }, 2_000)
      await client.disconnect(1_000)
      return
    } catch (e) {
      last = e instanceof Error ? e.message : String(e)
    }
    await sleep(50)
  }
  throw new Error(`${proc.name} not serving MQTT on 127.0.0.1:${port} after ${timeoutMs} ms (${last})`)
}

// ---------------------------------------------------------------------------
// /proc readings
// ---------------------------------------------------------------------------

/** VmRSS (or another Vm* field) of a process in KB; NaN when unreadable. */
export const statusKb = (pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number => {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8")
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(text)
    return m === null ? Number.NaN : Number(m[1])
  } catch {
    return Number.NaN
  }
}

let clkTck = 0
const ticksPerSecond = (): number => {
  if (clkTck === 0) {
    try {
      clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
    } catch {
      clkTck = 100
    }
  }
  return clkTck
}

/** user+system CPU time of a process (all threads) in ms; NaN when unreadable. */
export const cpuTimeMs = (pid: number): number => {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8")
    // fields after the parenthesised command name; utime and stime are fields 14 and 15
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ")
    const ticks = Number(rest[11]) + Number(rest[12])
    return (ticks * 1000) / ticksPerSecond()
  } catch {
    return Number.NaN
  }
}

/**
 * Busy CPU time of the whole machine (all cores, everything but idle and
 * iowait) in ms, from /proc/stat; NaN when unreadable.
 */
export const systemBusyMs = (): number => {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!
    const f = line.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal (guest is included in user)
    const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!
    return (busy * 1000) / ticksPerSecond()
  } catch {
    return Number.NaN
  }
}

/**
 * The processes whose parent is `pid` (from /proc/<n>/stat), e.g. the workers a
 * `--workers N` supervisor forked; empty when /proc cannot be read.
 */
export const childPids = (pid: number): Array<number> => {
  const out: Array<number> = []
  let entries: Array<string>
  try {
    entries = readdirSync("/proc")
  } catch {
    return out
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const text = readFileSync(`/proc/${entry}/stat`, "utf8")
      // the field after the state, which follows the parenthesised command name
      const ppid = Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid === pid) out.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return out
}
