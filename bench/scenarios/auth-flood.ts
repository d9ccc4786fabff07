/**
 * Auth flood (issue 12): does a stream of wrong-password CONNECTs slow down
 * the clients that are already connected?
 *
 * Every broker runs with authentication on (profile "auth": one user in a
 * Mosquitto password file written by `mosquitto_passwd`, an authenticate hook
 * for Aedes). One authenticated client publishes QoS 0 at `latencyRate` msg/s
 * to a topic another authenticated client subscribes to, with
 * process.hrtime.bigint() in the payload as in the latency scenario.
 *
 * Phase A ("alone", `authPhaseMs`): the publisher and subscriber by themselves.
 * Phase B ("flood", as long): the same while a separate process
 * (bench/peers/connect-flood.ts) opens `authFloodRate` new TCP connections per
 * second, each a CONNECT with the right user and a wrong password, closed on
 * its CONNACK. Password checks are deliberately slow in some brokers (a hash
 * per attempt), so this measures whether that work, and the connection churn,
 * stall the event loop that delivers the subscriber's messages.
 *
 * Samples are attributed to the phase in which they were *sent* (the phase
 * travels in the payload). Reported: p99 alone, p99 under the flood (target
 * for ours: ≤ 10 ms), their ratio, and refused CONNECTs answered per second;
 * p50 and p99.9 of both phases and CONNACK counts by return code in the JSON.
 */
import { fork } from "node:child_process"
import * as os from "node:os"
import type { ChildProcess } from "node:child_process"
import { fileURLToPath } from "node:url"
import { AUTH_PASSWORD, AUTH_USER } from "../lib/brokers.ts"
import { sleep } from "../lib/client.ts"
import { closeAll, connectClient, CpuWindow, runTag, waitUntil } from "../lib/common.ts"
import { statusKb, trackChild } from "../lib/procs.ts"
import { integrity, percentileSorted, Receiver } from "../lib/stats.ts"
import type { RunContext, RunResult, Scenario } from "../lib/types.ts"
import { buildBatch, OFF_SEQ, OFF_TS, PAYLOAD_HEADER, publishTemplate } from "../lib/wire.ts"
import type { FloodCounts, FloodReport } from "../peers/connect-flood.ts"

/** payload bytes 2..3 (reserved in the common layout) carry the phase a message was sent in */
const OFF_PHASE = 2
const PHASE_NONE = 0
const PHASE_ALONE = 1
const PHASE_FLOOD = 2
/** nice value of the flood process (see `ConnectFlood.start`) */
const FLOOD_NICE = 10
/** CONNACK return code 0: accepted. Any of those in the flood is a broker bug. */
const ACCEPTED = "0"

/** The harness's handle on the connect-flood process. */
class ConnectFlood {
  private readonly child: ChildProcess
  private onStopped: ((c: FloodCounts) => void) | undefined
  error: string | undefined = undefined

  private constructor(child: ChildProcess) {
    this.child = child
    child.on("message", (m: FloodReport) => {
      if ("stopped" in m) this.onStopped?.(m.stopped)
      else if ("error" in m) this.error = m.error
    })
  }

  /** Forks the generator and waits until it is ready. */
  static start(port: number, rate: number, timeoutMs: number): Promise<ConnectFlood> {
    const script = fileURLToPath(new URL("../peers/connect-flood.ts", import.meta.url))
    const args = ["--port", String(port), "--rate", String(rate), "--user", AUTH_USER, "--password", `not-${AUTH_PASSWORD}`, "--timeout", String(timeoutMs)]
    const child = fork(script, args, { stdio: ["ignore", "ignore", "inherit", "ipc"] })
    trackChild(child)
    // on a small machine the flood shares cores with the broker and the
    // harness's latency clients; a lower priority keeps its own CPU use from
    // delaying them, so what the latency rows show is the broker's handling
    // of the flood (the achieved attempt rate is in the JSON)
    if (child.pid !== undefined) {
      try {
        os.setPriority(child.pid, FLOOD_NICE)
      } catch {
        // not permitted: run at normal priority
      }
    }
    const flood = new ConnectFlood(child)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("connect flood did not start within 10 s")), 10_000)
      child.on("message", (m: FloodReport) => {
        if ("ready" in m) {
          clearTimeout(timer)
          resolve(flood)
        }
      })
      child.once("exit", (code) => reject(new Error(`connect flood exited (${code})`)))
    })
  }

  /** Starts opening connections. */
  start(): void {
    this.child.send("start")
  }

  /** Stops opening connections; the counts once the open ones have ended (undefined after `timeoutMs`). */
  async stop(timeoutMs: number): Promise<FloodCounts | undefined> {
    let timer: NodeJS.Timeout | undefined
    const stopped = new Promise<FloodCounts | undefined>((resolve) => {
      this.onStopped = resolve
      timer = setTimeout(() => resolve(undefined), timeoutMs)
    })
    if (this.child.connected) this.child.send("stop")
    const counts = await stopped
    clearTimeout(timer)
    this.kill()
    return counts
  }

  /** The generator's process id (its CPU counts as the load generator's). */
  get pid(): number {
    return this.child.pid ?? -1
  }

  /** Ends the process (idempotent). */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL")
  }
}

const run = async (ctx: RunContext): Promise<RunResult> => {
  const prm = ctx.params
  const tag = runTag()
  const creds = { username: AUTH_USER, password: AUTH_PASSWORD }
  const rcv = new Receiver(1)
  const samples: [Array<number>, Array<number>, Array<number>] = [[], [], []]
  let phase = PHASE_NONE
  let now = 0n
  let nowValid = false

  const { client: sub } = await connectClient(ctx, { clientId: `${tag}s`, clean: true, keepalive: 0, ...creds })
  sub.publishHook = (buf, ps, pe) => {
    if (pe - ps < PAYLOAD_HEADER) {
      rcv.foreign++
      return
    }
    // one clock reading per received chunk, as in the latency scenario
    if (!nowValid) {
      now = process.hrtime.bigint()
      nowValid = true
    }
    rcv.record(buf.readUInt16BE(ps), buf.readUInt32BE(ps + OFF_SEQ))
    samples[buf.readUInt16BE(ps + OFF_PHASE)]?.push(Number(now - buf.readBigUInt64BE(ps + OFF_TS)) / 1e6)
  }
  sub.chunkHook = () => {
    nowValid = false
  }
  await sub.subscribe([{ topic: `bench/auth/${tag}`, qos: 0 }])

  const { client: pub } = await connectClient(ctx, { clientId: `${tag}p`, clean: true, keepalive: 0, ...creds })
  const template = publishTemplate(`bench/auth/${tag}`, 0, prm.payload, 0)

  // paced sender: every ~1 ms send what is due so far (usually 2 messages at 2000/s)
  let seq = 0
  let sending = true
  const t0 = performance.now()
  const tick = (): void => {
    if (!sending || ctx.aborted || pub.closed) return
    const due = Math.floor(((performance.now() - t0) / 1000) * prm.latencyRate) - seq
    if (due > 0) {
      const batch = buildBatch(template, due, seq, undefined, true)
      // stamp the phase into every message of the batch
      for (let i = 0; i < due; i++) batch.writeUInt16BE(phase, i * template.length + template.payloadOffset + OFF_PHASE)
      pub.write(batch)
      seq += due
    }
    setTimeout(tick, 1)
  }
  tick()

  const flood = await ConnectFlood.start(ctx.broker.port, prm.authFloodRate, prm.authTimeoutMs)
  const cpu = new CpuWindow(ctx.broker.pid, [flood.pid])
  let counts: FloodCounts | undefined
  let drained = false
  try {
    await sleep(prm.warmupMs)
    phase = PHASE_ALONE
    await sleep(prm.authPhaseMs)
    // a short gap so phase-A messages still in flight do not meet the first flood connects
    phase = PHASE_NONE
    await sleep(100)
    flood.start()
    phase = PHASE_FLOOD
    cpu.start()
    await sleep(prm.authPhaseMs)
    cpu.stop()
    phase = PHASE_NONE
    sending = false
    counts = await flood.stop(prm.authTimeoutMs + 10_000)
    drained = await waitUntil(ctx, () => sub.received >= seq, { timeoutMs: 10_000, stallMs: prm.stallMs, progress: () => sub.received })
  } finally {
    // also when the run fails half way: the generator must not outlive it
    flood.kill()
  }
  const peak = statusKb(ctx.broker.pid, "VmHWM")
  const closedEarly = [sub, pub].filter((c) => c.closed).length
  await closeAll(ctx)

  const alone = Float64Array.from(samples[PHASE_ALONE]).sort()
  const flooded = Float64Array.from(samples[PHASE_FLOOD]).sort()
  const p99Alone = percentileSorted(alone, 99)
  const p99Flood = percentileSorted(flooded, 99)
  const connacks = counts?.connacks ?? {}
  const answered = Object.values(connacks).reduce((a, n) => a + n, 0)
  // the flood's own clock: answers per second over the time it was opening connections
  const floodSeconds = (counts?.wallMs ?? Number.NaN) / 1000
  const accepted = connacks[ACCEPTED] ?? 0
  const notes = [
    counts === undefined ? "the connect flood did not report its counts" : "",
    accepted > 0 ? `${accepted} wrong-password CONNECT(s) were accepted` : "",
    (counts?.timeouts ?? 0) > 0 ? `${counts!.timeouts} wrong-password CONNECT(s) had no CONNACK after ${prm.authTimeoutMs} ms` : "",
    (counts?.closedWithoutConnack ?? 0) + (counts?.errors ?? 0) > 0
      ? `${counts!.closedWithoutConnack + counts!.errors} flood connection(s) closed or failed without a CONNACK`
      : "",
    (counts?.skipped ?? 0) > 0 ? `${counts!.skipped} flood connection(s) not opened: too many still waiting for a CONNACK` : "",
    flood.error ?? ""
  ].filter((x) => x !== "")
  return {
    metrics: {
      p99Alone,
      p99Flood,
      p99Ratio: p99Flood / p99Alone,
      badConnackRate: answered / floodSeconds
    },
    integrity: integrity([rcv], [seq]),
    generatorCpu: cpu.generator,
    brokerCpu: cpu.broker,
    otherCpu: cpu.other,
    brokerPeakRssKb: peak,
    extra: {
      rate: prm.latencyRate,
      floodRate: prm.authFloodRate,
      phaseMs: prm.authPhaseMs,
      samplesAlone: alone.length,
      samplesFlood: flooded.length,
      p50Alone: percentileSorted(alone, 50),
      p999Alone: percentileSorted(alone, 99.9),
      p50Flood: percentileSorted(flooded, 50),
      p999Flood: percentileSorted(flooded, 99.9),
      maxFlood: flooded.length > 0 ? flooded[flooded.length - 1]! : Number.NaN,
      floodAttempted: counts?.attempted ?? 0,
      floodAttemptRate: (counts?.attempted ?? Number.NaN) / floodSeconds,
      floodConnacks: answered,
      floodAccepted: accepted,
      // CONNACK return codes as "code:count" pairs (JSON extras are flat)
      floodConnackCodes: Object.entries(connacks).map(([rc, n]) => `${rc}:${n}`).join(","),
      floodClosedWithoutConnack: counts?.closedWithoutConnack ?? 0,
      floodTimeouts: counts?.timeouts ?? 0,
      floodErrors: counts?.errors ?? 0,
      floodSkipped: counts?.skipped ?? 0,
      note: notes.join("; "),
      drained,
      connectionsClosedEarly: closedEarly
    }
  }
}

/** Wrong-password CONNECTs at 2000/s while an authenticated client publishes at 2000 msg/s: p99 with and without. */
export const authFlood: Scenario = {
  id: "auth-flood",
  title: "auth flood",
  description:
    "authentication on; 1 publisher at 2000 msg/s → 1 subscriber, QoS 0: p99 alone, then while another process opens 2000 " +
    "connections/s each sending a CONNECT with a wrong password; p99 with/without, refused CONNECTs answered per second",
  metrics: [
    { key: "p99Alone", label: "latency p99 alone", unit: "ms", better: "lower" },
    { key: "p99Flood", label: "latency p99 under auth flood", unit: "ms", better: "lower" },
    { key: "p99Ratio", label: "latency p99 flood/alone", unit: "x", better: "lower" },
    { key: "badConnackRate", label: "bad CONNECTs answered", unit: "/s", better: "higher" }
  ],
  brokerProfile: "auth",
  run
}
