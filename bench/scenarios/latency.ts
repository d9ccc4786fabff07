/**
 * End-to-end latency at a fixed, modest rate: one publisher sends
 * `latencyRate` msg/s (QoS 0) with process.hrtime.bigint() in the payload;
 * one subscriber records now - sent for every message received during the
 * measured window. Publisher and subscriber share the harness process, so the
 * clock is the same.
 */
import { appendFileSync } from "node:fs"
import { sleep } from "../lib/client.ts"
import { closeAll, connectClient, CpuWindow, runTag, waitUntil } from "../lib/common.ts"
import { statusKb } from "../lib/procs.ts"
import { integrity, percentileSorted, Receiver } from "../lib/stats.ts"
import type { RunContext, RunResult, Scenario } from "../lib/types.ts"
import { buildBatch, OFF_SEQ, OFF_TS, PAYLOAD_HEADER, publishTemplate } from "../lib/wire.ts"

const TOPIC = "bench/lat"

const run = async (ctx: RunContext): Promise<RunResult> => {
  const prm = ctx.params
  const tag = runTag()
  const rcv = new Receiver(1)
  let recording = false
  let samples = new Float64Array(Math.ceil((prm.latencyRate * (prm.durationMs + prm.warmupMs)) / 1000) + 1024)
  let n = 0
  let now = 0n
  let nowValid = false
  // BENCH_LATENCY_TRACE=FILE (diagnostics): the wall-clock time of each sample's arrival, so the
  // tail can be laid against the broker's GC and event-loop stalls (`bench/tools/tail-probe.mjs`);
  // a third column, the monotonic clock in ms, lays it against a `--cpu-prof` profile's timestamps
  const traceFile = process.env["BENCH_LATENCY_TRACE"]
  let arrivals = traceFile === undefined ? undefined : new Float64Array(samples.length)
  let nowEpoch = 0

  const { client: sub } = await connectClient(ctx, { clientId: `${tag}s`, clean: true, keepalive: 0 })
  sub.publishHook = (buf, ps, pe) => {
    if (pe - ps < PAYLOAD_HEADER) {
      rcv.foreign++
      return
    }
    if (!nowValid) {
      now = process.hrtime.bigint()
      if (arrivals !== undefined) nowEpoch = performance.timeOrigin + performance.now()
      nowValid = true
    }
    rcv.record(buf.readUInt16BE(ps), buf.readUInt32BE(ps + OFF_SEQ))
    if (recording) {
      if (n === samples.length) {
        const next = new Float64Array(samples.length * 2)
        next.set(samples)
        samples = next
        if (arrivals !== undefined) {
          const more = new Float64Array(next.length)
          more.set(arrivals)
          arrivals = more
        }
      }
      if (arrivals !== undefined) arrivals[n] = nowEpoch
      samples[n++] = Number(now - buf.readBigUInt64BE(ps + OFF_TS)) / 1e6
    }
  }
  sub.chunkHook = () => {
    nowValid = false
  }
  await sub.subscribe([{ topic: TOPIC, qos: 0 }])

  const { client: pub } = await connectClient(ctx, { clientId: `${tag}p`, clean: true, keepalive: 0 })
  const template = publishTemplate(TOPIC, 0, prm.payload, 0)

  // paced sender: every ~1 ms send what is due so far (usually 2 messages at 2000/s)
  let seq = 0
  let sending = true
  const t0 = performance.now()
  const tick = (): void => {
    if (!sending || ctx.aborted || pub.closed) return
    const due = Math.floor(((performance.now() - t0) / 1000) * prm.latencyRate) - seq
    if (due > 0) {
      pub.write(buildBatch(template, due, seq, undefined, true))
      seq += due
    }
    setTimeout(tick, 1)
  }
  tick()

  const cpu = new CpuWindow(ctx.broker.pid)
  await sleep(prm.warmupMs)
  recording = true
  const seq0 = seq
  cpu.start()
  await sleep(prm.durationMs)
  cpu.stop()
  recording = false
  const sentInWindow = seq - seq0
  sending = false

  const drained = await waitUntil(ctx, () => sub.received >= seq, { timeoutMs: 10_000, stallMs: prm.stallMs, progress: () => sub.received })
  const peak = statusKb(ctx.broker.pid, "VmHWM")
  await closeAll(ctx)

  if (traceFile !== undefined && arrivals !== undefined) {
    const lines = [`run ${tag} ${ctx.broker.name}`]
    // the monotonic arrival: epoch minus the offset between the two clocks, taken now
    const offset = performance.timeOrigin + performance.now() - Number(process.hrtime.bigint()) / 1e6
    for (let i = 0; i < n; i++) lines.push(`${arrivals[i]!.toFixed(3)} ${samples[i]!.toFixed(3)} ${(arrivals[i]! - offset).toFixed(3)}`)
    appendFileSync(traceFile, lines.join("\n") + "\n")
  }
  const sorted = samples.slice(0, n).sort()
  return {
    metrics: {
      p50: percentileSorted(sorted, 50),
      p99: percentileSorted(sorted, 99),
      p999: percentileSorted(sorted, 99.9)
    },
    integrity: integrity([rcv], [seq]),
    generatorCpu: cpu.generator,
    brokerCpu: cpu.broker,
    otherCpu: cpu.other,
    brokerPeakRssKb: peak,
    extra: {
      samples: n,
      achievedRate: sentInWindow / (cpu.wallMs / 1000),
      max: n > 0 ? sorted[n - 1]! : Number.NaN,
      drained
    }
  }
}

export const latency: Scenario = {
  id: "latency-q0",
  title: "latency @2000/s QoS0",
  description: "1 publisher at a fixed 2000 msg/s → 1 subscriber, QoS 0, hrtime timestamp in the payload; p50/p99/p99.9 in ms",
  metrics: [
    { key: "p50", label: "latency p50", unit: "ms", better: "lower" },
    { key: "p99", label: "latency p99", unit: "ms", better: "lower" },
    { key: "p999", label: "latency p99.9", unit: "ms", better: "lower" }
  ],
  run
}
