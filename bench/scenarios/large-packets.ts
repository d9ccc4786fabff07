/**
 * Large packets (issue 10, isolation): does one client uploading big messages
 * slow everybody else down?
 *
 * `largeProbes` clients each subscribe at QoS 1 to their own topic and, every
 * `probeIntervalMs`, send a PINGREQ and a small QoS 1 PUBLISH to that topic
 * (one write). Two round trips are sampled per tick: PINGREQ → PINGRESP, and
 * PUBLISH → the same message delivered back (hrtime in the payload).
 *
 * Phase A ("alone"): the probes run by themselves for `largePhaseMs`.
 * Phase B ("with big"): one more client publishes `largeBytes`-byte QoS 1
 * messages back to back (each waits for its PUBACK) to a topic nobody
 * subscribes to, so the broker's cost is receiving, buffering and parsing the
 * packet (and routing it to nobody), not delivering 16 MB to the generator,
 * which would measure the generator's reader as much as the broker. Same
 * broker process, same connections, right after phase A.
 *
 * Samples are attributed to the phase in which they were *sent* (the phase
 * number travels in the payload; PINGREQs keep a FIFO of send times).
 * Reported: p50 and p99 of both phases, p99 with/without (target for ours:
 * ≤ 2), and the median time from writing a big PUBLISH to its PUBACK.
 *
 * Brokers run with their default settings (profile "defaults"): ours' default
 * packet limit (32 MiB) takes 16 MB; Mosquitto and Aedes accept up to 256 MB.
 */
import { fork } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { BigPublisherReport } from "../peers/big-publisher.ts"
import type { RawClient } from "../lib/client.ts"
import { sleep } from "../lib/client.ts"
import { closeAll, connectClient, CpuWindow, inWaves, runTag, waitFor } from "../lib/common.ts"
import type { WaitEnd } from "../lib/common.ts"
import { statusKb, trackChild } from "../lib/procs.ts"
import { percentileSorted, SeqTracker } from "../lib/stats.ts"
import type { RunContext, RunResult, Scenario } from "../lib/types.ts"
import { buildBatch, OFF_SEQ, OFF_TS, PAYLOAD_HEADER, PINGREQ, publishTemplate } from "../lib/wire.ts"

/** payload bytes 2..3 (reserved in the common layout) carry the phase a probe was sent in */
const OFF_PHASE = 2
const PINGRESP = 13
const PHASE_NONE = 0
const PHASE_ALONE = 1
const PHASE_BIG = 2

/** Round-trip samples (ms) of one phase, pings and publishes apart. */
class PhaseSamples {
  readonly ping: Array<number> = []
  readonly publish: Array<number> = []
  all(): Float64Array {
    return Float64Array.from([...this.ping, ...this.publish]).sort()
  }
}

const pctl = (xs: ReadonlyArray<number>, q: number): number => percentileSorted(Float64Array.from(xs).sort(), q)

/** The harness's handle on the big-publisher process. */
class BigPublisher {
  readonly pubackMs: Array<number> = []
  sent = 0
  acked = 0
  error: string | undefined = undefined
  private readonly child: ChildProcess
  private onStopped: (() => void) | undefined

  private constructor(child: ChildProcess) {
    this.child = child
    child.on("message", (m: BigPublisherReport) => {
      if ("puback" in m) {
        this.pubackMs.push(m.puback)
        this.acked++
      } else if ("stopped" in m) {
        this.sent = m.stopped.sent
        this.acked = m.stopped.acked
        this.onStopped?.()
      } else if ("error" in m) this.error = m.error
    })
  }

  /** Forks the publisher and waits until it is connected. */
  static start(port: number, bytes: number, topic: string): Promise<BigPublisher> {
    const script = fileURLToPath(new URL("../peers/big-publisher.ts", import.meta.url))
    const child = fork(script, ["--port", String(port), "--bytes", String(bytes), "--topic", topic], { stdio: ["ignore", "ignore", "inherit", "ipc"] })
    trackChild(child)
    const pub = new BigPublisher(child)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("big publisher did not connect within 10 s")), 10_000)
      child.on("message", (m: BigPublisherReport) => {
        if ("ready" in m) {
          clearTimeout(timer)
          resolve(pub)
        } else if ("error" in m && pub.acked === 0) {
          clearTimeout(timer)
          reject(new Error(`big publisher: ${m.error}`))
        }
      })
      child.once("exit", (code) => reject(new Error(`big publisher exited (${code})`)))
    })
  }

  /** Starts publishing back to back. */
  start(): void {
    this.child.send("start")
  }

  /** Stops after the message in progress; whether it was acknowledged in time. Ends the process. */
  async stop(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const stopped = new Promise<boolean>((resolve) => {
      this.onStopped = () => resolve(true)
      timer = setTimeout(() => resolve(false), timeoutMs)
    })
    if (this.child.connected) this.child.send("stop")
    const ok = await stopped
    clearTimeout(timer)
    this.kill()
    return ok && this.acked === this.sent
  }

  /** Ends the process (idempotent). */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL")
  }
}

interface Probe {
  readonly client: RawClient
  readonly tracker: SeqTracker
  readonly pings: Array<{ readonly t: bigint; readonly phase: number }>
  seq: number
  nextId: number
  unacked: number
}

const run = async (ctx: RunContext): Promise<RunResult> => {
  const prm = ctx.params
  const tag = runTag()
  const phases = [new PhaseSamples(), new PhaseSamples(), new PhaseSamples()]
  let phase = PHASE_NONE

  // --- probe clients ----------------------------------------------------------
  const probes: Array<Probe> = await inWaves(prm.largeProbes, 25, async (i) => {
    const { client } = await connectClient(ctx, { clientId: `${tag}q${i}`, clean: true, keepalive: 0 })
    const probe: Probe = { client, tracker: new SeqTracker(), pings: [], seq: 0, nextId: 1, unacked: 0 }
    client.publishHook = (buf, ps, pe) => {
      if (pe - ps < PAYLOAD_HEADER) return
      const now = process.hrtime.bigint()
      probe.tracker.record(buf.readUInt32BE(ps + OFF_SEQ))
      phases[buf.readUInt16BE(ps + OFF_PHASE)]?.publish.push(Number(now - buf.readBigUInt64BE(ps + OFF_TS)) / 1e6)
    }
    client.pubackHook = () => void probe.unacked--
    client.otherHook = (type) => {
      if (type !== PINGRESP) return
      const p = probe.pings.shift()
      if (p !== undefined) phases[p.phase]!.ping.push(Number(process.hrtime.bigint() - p.t) / 1e6)
    }
    await client.subscribe([{ topic: `bench/probe/${tag}/${i}`, qos: 1 }])
    return probe
  })
  const templates = probes.map((_, i) => publishTemplate(`bench/probe/${tag}/${i}`, 1, PAYLOAD_HEADER, i))

  // every probe ticks at the same steady rate, staggered so the broker sees an even stream
  let probing = true
  const timers: Array<NodeJS.Timeout> = []
  probes.forEach((probe, i) => {
    const tick = (): void => {
      if (!probing || ctx.aborted || probe.client.closed) return
      const id = probe.nextId
      probe.nextId = id === 65535 ? 1 : id + 1
      const pub = buildBatch(templates[i]!, 1, probe.seq++, [id], true)
      pub.writeUInt16BE(phase, templates[i]!.payloadOffset + OFF_PHASE)
      probe.unacked++
      probe.pings.push({ t: process.hrtime.bigint(), phase })
      probe.client.write(Buffer.concat([PINGREQ, pub]))
    }
    timers.push(
      setTimeout(() => {
        tick()
        timers.push(setInterval(tick, prm.probeIntervalMs))
      }, (prm.probeIntervalMs * i) / probes.length)
    )
  })

  // --- the big publisher, in its own process (see bench/peers/big-publisher.ts) ----
  const big = await BigPublisher.start(ctx.broker.port, prm.largeBytes, `bench/large/${tag}`)

  const cpu = new CpuWindow(ctx.broker.pid)
  let rssBefore = Number.NaN
  let rssDuring = Number.NaN
  let bigDone = false
  let drainEnded: WaitEnd = "aborted"
  try {
    // --- warm-up, phase A, phase B ---------------------------------------------
    await sleep(prm.warmupMs)
    phase = PHASE_ALONE
    await sleep(prm.largePhaseMs)
    // a short gap so phase-A probes still in flight do not meet the first big packet
    phase = PHASE_NONE
    await sleep(Math.min(100, prm.probeIntervalMs * 5))
    rssBefore = statusKb(ctx.broker.pid)
    big.start()
    phase = PHASE_BIG
    cpu.start()
    await sleep(prm.largePhaseMs)
    cpu.stop()
    phase = PHASE_NONE
    rssDuring = statusKb(ctx.broker.pid)
    probing = false
    for (const t of timers) clearTimeout(t)

    // --- drain: the big PUBLISH in progress, every probe's publish and ping ------
    // the last big PUBLISH may still be on its way (up to a minute), the probes a few ms
    bigDone = await big.stop(60_000)
    drainEnded = await waitFor(
      ctx,
      () => probes.every((p) => p.tracker.unique === p.seq && p.unacked === 0 && p.pings.length === 0),
      {
        timeoutMs: 30_000,
        stallMs: prm.stallMs,
        progress: () => probes.reduce((a, p) => a + p.tracker.unique + p.pings.length + p.unacked, 0)
      }
    )
  } finally {
    // also when the run fails half way: the publisher must not outlive it
    big.kill()
  }
  const peak = statusKb(ctx.broker.pid, "VmHWM")
  const closedEarly = probes.filter((p) => p.client.closed).length
  await closeAll(ctx)

  const alone = phases[PHASE_ALONE]!.all()
  const withBig = phases[PHASE_BIG]!.all()
  const p99Alone = percentileSorted(alone, 99)
  const p99Big = percentileSorted(withBig, 99)
  const pubackMs = big.pubackMs
  let expected = big.sent
  let received = big.acked
  let duplicates = 0
  let reordered = 0
  for (const p of probes) {
    expected += p.seq
    received += p.tracker.unique
    duplicates += p.tracker.duplicates
    reordered += p.tracker.reordered
  }
  return {
    metrics: {
      p50Alone: percentileSorted(alone, 50),
      p99Alone,
      p50Big: percentileSorted(withBig, 50),
      p99Big,
      p99Ratio: p99Big / p99Alone,
      pubackMs: pctl(pubackMs, 50)
    },
    integrity: { expected, received, lost: expected - received, duplicates, reordered },
    generatorCpu: cpu.generator,
    brokerCpu: cpu.broker,
    otherCpu: cpu.other,
    brokerPeakRssKb: peak,
    extra: {
      largeBytes: prm.largeBytes,
      probes: prm.largeProbes,
      probeIntervalMs: prm.probeIntervalMs,
      samplesAlone: alone.length,
      samplesWithBig: withBig.length,
      pingP99Alone: pctl(phases[PHASE_ALONE]!.ping, 99),
      pingP99WithBig: pctl(phases[PHASE_BIG]!.ping, 99),
      publishP99Alone: pctl(phases[PHASE_ALONE]!.publish, 99),
      publishP99WithBig: pctl(phases[PHASE_BIG]!.publish, 99),
      maxWithBig: withBig.length > 0 ? withBig[withBig.length - 1]! : Number.NaN,
      bigPublishes: big.sent,
      bigPubacks: big.acked,
      note: [
        bigDone ? "" : "the big publisher's last PUBACK never came",
        big.error ?? ""
      ].filter((x) => x !== "").join("; "),
      pubackMsMax: pubackMs.length > 0 ? Math.max(...pubackMs) : Number.NaN,
      bigMBps: pubackMs.length > 0 ? (prm.largeBytes / 1e6) / (pctl(pubackMs, 50) / 1000) : Number.NaN,
      rssBeforeBigKb: rssBefore,
      rssWithBigKb: rssDuring,
      drained: drainEnded === "done" && bigDone,
      drainEnded,
      connectionsClosedEarly: closedEarly
    }
  }
}

/** One client publishing big QoS 1 messages back to back while 10 others probe round trips. */
export const largePackets: Scenario = {
  id: "large-packets",
  title: "large packets",
  description:
    "10 clients send PINGREQ + a QoS 1 publish-to-self every 20 ms; p50/p99 round trip alone, then while one client publishes " +
    "16 MB (quick: 1 MB) QoS 1 messages back to back to a topic nobody subscribes to; p99 with/without, ms per big PUBACK",
  metrics: [
    { key: "p50Alone", label: "probe p50 alone", unit: "ms", better: "lower" },
    { key: "p99Alone", label: "probe p99 alone", unit: "ms", better: "lower" },
    { key: "p50Big", label: "probe p50 with big pubs", unit: "ms", better: "lower" },
    { key: "p99Big", label: "probe p99 with big pubs", unit: "ms", better: "lower" },
    { key: "p99Ratio", label: "probe p99 with/without", unit: "x", better: "lower" },
    { key: "pubackMs", label: "big PUBLISH → PUBACK", unit: "ms", better: "lower" }
  ],
  brokerProfile: "defaults",
  timeoutMs: 150_000,
  run
}
