import { RawClient, sleep } from "./client.ts"
import type { Connack } from "./client.ts"
import { cpuTimeMs, systemBusyMs } from "./procs.ts"
import { cpuPercent } from "./stats.ts"
import type { RunContext } from "./types.ts"
import type { ConnectOptions } from "./wire.ts"

let runCounter = 0
/** A short prefix unique per run, for client ids. */
export const runTag = (): string => `b${process.pid.toString(36)}${(runCounter++).toString(36)}`

/**
 * Opens a connection and completes the MQTT handshake. `setup` runs before
 * CONNECT is written, so hooks it installs see messages that arrive in the
 * same chunk as the CONNACK (queued messages of a persistent session).
 * `port`: another broker than ctx.broker (a second cluster node).
 */
export const connectClient = async (
  ctx: RunContext,
  opts: ConnectOptions,
  setup?: (client: RawClient) => void,
  port: number = ctx.broker.port
): Promise<{ client: RawClient; connack: Connack }> => {
  if (ctx.aborted) throw new Error("aborted")
  const client = await RawClient.open(port)
  ctx.clients.add(client)
  setup?.(client)
  try {
    return { client, connack: await client.handshake(opts) }
  } catch (e) {
    client.destroy()
    throw e
  }
}

/** Runs `fn(i)` for i in [0, n) with at most `parallel` in flight. */
export const inWaves = async <A>(n: number, parallel: number, fn: (i: number) => Promise<A>): Promise<Array<A>> => {
  const out: Array<A> = new Array<A>(n)
  for (let start = 0; start < n; start += parallel) {
    const end = Math.min(n, start + parallel)
    const wave: Array<Promise<void>> = []
    for (let i = start; i < end; i++) wave.push(fn(i).then((a) => void (out[i] = a)))
    await Promise.all(wave)
  }
  return out
}

/** Why `waitFor` returned. */
export type WaitEnd = "done" | "stalled" | "timeout" | "aborted"

/**
 * Polls `done()` every `pollMs` until it holds, `progress()` has not changed
 * for `stallMs`, `timeoutMs` elapsed, or the run was aborted; says which.
 */
export const waitFor = async (
  ctx: RunContext,
  done: () => boolean,
  opts: { readonly timeoutMs: number; readonly stallMs: number; readonly progress: () => number; readonly pollMs?: number }
): Promise<WaitEnd> => {
  const start = Date.now()
  let last = opts.progress()
  let lastChange = start
  while (!ctx.aborted) {
    if (done()) return "done"
    const now = Date.now()
    if (now - start > opts.timeoutMs) return "timeout"
    const p = opts.progress()
    if (p !== last) {
      last = p
      lastChange = now
    } else if (now - lastChange > opts.stallMs) return "stalled"
    await sleep(opts.pollMs ?? 10)
  }
  return "aborted"
}

/** `waitFor`, answering only whether `done()` held. */
export const waitUntil = async (
  ctx: RunContext,
  done: () => boolean,
  opts: { readonly timeoutMs: number; readonly stallMs: number; readonly progress: () => number; readonly pollMs?: number }
): Promise<boolean> => (await waitFor(ctx, done, opts)) === "done"

const MIN_CPU_WINDOW_MS = 100

/**
 * CPU over a window, each as % of one core: the generator (this process), the
 * broker process, and everything else on the machine (other processes, kernel
 * work not charged to either; high values mean the run was disturbed).
 * NaN for windows under 100 ms.
 */
export class CpuWindow {
  private readonly pids: ReadonlyArray<number>
  private readonly helpers: ReadonlyArray<number>
  private t0 = 0
  private cpu0: NodeJS.CpuUsage = process.cpuUsage()
  private helpers0 = 0
  private broker0 = 0
  private each0: Array<number> = []
  private system0 = 0
  generator = 0
  broker = 0
  /** the broker's CPU per process, in the order of the pids given */
  brokerEach: Array<number> = []
  other = 0
  wallMs = 0
  /**
   * `helperPids`: load-generator processes the harness forked (e.g. the
   * auth-flood's connect generator); their CPU counts as the generator's, not
   * as "other" load disturbing the run. Several broker pids (cluster nodes,
   * workers and their Redis server) add up to the broker's CPU.
   */
  constructor(pid: number | ReadonlyArray<number>, helperPids: ReadonlyArray<number> = []) {
    this.pids = typeof pid === "number" ? [pid] : pid
    this.helpers = helperPids
  }
  private brokerMs(): number {
    return this.pids.reduce((a, p) => a + cpuTimeMs(p), 0)
  }
  private helpersMs(): number {
    return this.helpers.reduce((a, p) => a + cpuTimeMs(p), 0)
  }
  start(): void {
    this.t0 = performance.now()
    this.cpu0 = process.cpuUsage()
    this.broker0 = this.brokerMs()
    this.each0 = this.pids.map(cpuTimeMs)
    this.helpers0 = this.helpersMs()
    this.system0 = systemBusyMs()
  }
  stop(): void {
    this.wallMs = performance.now() - this.t0
    if (this.wallMs < MIN_CPU_WINDOW_MS) {
      // /proc counts in clock ticks (10 ms): too coarse for a window this short
      this.generator = Number.NaN
      this.broker = Number.NaN
      this.brokerEach = this.pids.map(() => Number.NaN)
      this.other = Number.NaN
      return
    }
    this.generator = cpuPercent(process.cpuUsage(this.cpu0), this.wallMs) + ((this.helpersMs() - this.helpers0) / this.wallMs) * 100
    this.broker = ((this.brokerMs() - this.broker0) / this.wallMs) * 100
    this.brokerEach = this.pids.map((pid, i) => ((cpuTimeMs(pid) - this.each0[i]!) / this.wallMs) * 100)
    const system = ((systemBusyMs() - this.system0) / this.wallMs) * 100
    this.other = Math.max(0, system - this.generator - this.broker)
  }
}

export const closeAll = async (ctx: RunContext): Promise<void> => {
  for (const c of ctx.clients) c.destroy()
  ctx.clients.clear()
  await sleep(0)
}
