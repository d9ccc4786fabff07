/**
 * Connection churn (issue 16): 3 rounds of N cycles, each cycle a fresh client that CONNECTs
 * (clean session, its own client id), SUBSCRIBEs to its own topic, PUBLISHes one QoS 0 message
 * there, waits for it to come back and DISCONNECTs; `churnParallel` cycles run at a time. After
 * each round (and a settle of 3 s, so the broker is at rest: ours gives a burst's memory back
 * within 1 s of the quiet, README "Memory") the broker's RSS, and for the Node brokers the live heap after
 * a full GC (`bench/peers/heap-probe.mjs`, "heap" profile), are read. Nothing is meant to stay
 * behind a finished cycle: RSS should flatten after the first round and the heap return to its
 * value before the rounds. RSS is also sampled every 250 ms: the curve is in the JSON (`extra.
 * rssCurveMb`) and logged as one line per round.
 */
import { sleep } from "../lib/client.ts"
import { closeAll, connectClient, CpuWindow, runTag } from "../lib/common.ts"
import { readHeap } from "../lib/brokers.ts"
import { statusKb } from "../lib/procs.ts"
import type { RunContext, RunResult, Scenario } from "../lib/types.ts"
import { buildBatch, publishTemplate } from "../lib/wire.ts"

/** Rounds of cycles: the first fills what a warm process keeps (pools, code, JIT), the others show growth. */
export const CHURN_ROUNDS = 3
const SAMPLE_MS = 250

/** One cycle: connect, subscribe, publish to itself, receive it, disconnect. */
const cycle = async (ctx: RunContext, clientId: string): Promise<void> => {
  const { client } = await connectClient(ctx, { clientId, clean: true, keepalive: 0 })
  try {
    const topic = `churn/${clientId}`
    await client.subscribe([{ topic, qos: 0 }])
    const echoed = new Promise<void>((resolve, reject) => {
      client.publishHook = () => resolve()
      client.closeHook = () => reject(new Error(`${clientId}: closed before its message came back`))
    })
    client.write(buildBatch(publishTemplate(topic, 0, 16, 0), 1, 0, undefined, false))
    await echoed
    await client.disconnect()
  } finally {
    client.destroy()
    ctx.clients.delete(client)
  }
}

/** Runs `n` cycles, `parallel` at a time; resolves to how many failed. */
const round = async (ctx: RunContext, tag: string, roundIndex: number, n: number, parallel: number): Promise<number> => {
  let next = 0
  let failed = 0
  const worker = async (): Promise<void> => {
    while (!ctx.aborted) {
      const i = next++
      if (i >= n) return
      try {
        await cycle(ctx, `${tag}r${roundIndex}c${i}`)
      } catch {
        failed++
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker))
  return failed
}

const mb = (kb: number): number => kb / 1024

const run = async (ctx: RunContext): Promise<RunResult> => {
  const prm = ctx.params
  const tag = runTag()
  const pid = ctx.broker.pid
  const settleMs = prm.quick ? 300 : 3_000

  await sleep(settleMs)
  const rssBefore = statusKb(pid)
  const heapBefore = await readHeap(ctx.broker)
  const curve: Array<number> = [mb(rssBefore)]
  const sampler = setInterval(() => curve.push(mb(statusKb(pid))), SAMPLE_MS)

  const rss: Array<number> = []
  const heap: Array<number> = []
  const heapCommitted: Array<number> = []
  const cyclesPerSecond: Array<number> = []
  let failed = 0
  const cpu = new CpuWindow(pid)
  cpu.start()
  try {
    for (let r = 0; r < CHURN_ROUNDS && !ctx.aborted; r++) {
      const t0 = performance.now()
      failed += await round(ctx, tag, r, prm.churnCycles, prm.churnParallel)
      cyclesPerSecond.push(prm.churnCycles / ((performance.now() - t0) / 1000))
      await sleep(settleMs)
      rss.push(statusKb(pid))
      const reading = await readHeap(ctx.broker)
      heap.push(reading?.usedHeapKb ?? Number.NaN)
      heapCommitted.push(reading?.totalHeapKb ?? Number.NaN)
      ctx.log(
        `round ${r + 1}: ${Math.round(cyclesPerSecond[r]!)} cycles/s, RSS ${mb(rss[r]!).toFixed(1)} MB` +
          (Number.isFinite(heap[r])
            ? `, heap ${mb(heap[r]!).toFixed(1)} MB live of ${mb(heapCommitted[r]!).toFixed(1)} MB committed (before: ${
              mb(heapBefore?.usedHeapKb ?? Number.NaN).toFixed(1)
            } of ${mb(heapBefore?.totalHeapKb ?? Number.NaN).toFixed(1)})`
            : "")
      )
    }
  } finally {
    clearInterval(sampler)
  }
  cpu.stop()
  const peak = statusKb(pid, "VmHWM")
  await closeAll(ctx)
  ctx.log(`RSS curve (MB, every ${SAMPLE_MS} ms): ${curve.map((x) => x.toFixed(0)).join(" ")}`)

  const n = prm.churnCycles * CHURN_ROUNDS
  const last = rss.length - 1
  return {
    metrics: {
      rssRound1: mb(rss[0] ?? Number.NaN),
      rssRound3: mb(rss[last] ?? Number.NaN),
      rssGrowth: (rss[last] ?? Number.NaN) / (rss[0] ?? Number.NaN),
      heapVsBefore: (heap[last] ?? Number.NaN) / (heapBefore?.usedHeapKb ?? Number.NaN),
      // what the first round leaves is mostly V8 warming up (compiled code, inline caches): the
      // growth after it is what churn itself would accumulate
      heapGrowth: (heap[last] ?? Number.NaN) / (heap[0] ?? Number.NaN),
      cyclesPerSecond: cyclesPerSecond.length === 0 ? Number.NaN : cyclesPerSecond.reduce((a, b) => a + b, 0) / cyclesPerSecond.length
    },
    integrity: { expected: n, received: n - failed, lost: failed, duplicates: 0, reordered: 0 },
    generatorCpu: cpu.generator,
    brokerCpu: cpu.broker,
    otherCpu: cpu.other,
    brokerPeakRssKb: peak,
    extra: {
      cyclesPerRound: prm.churnCycles,
      parallel: prm.churnParallel,
      failed,
      rssBeforeKb: rssBefore,
      rssAfterRoundsKb: rss.join(" "),
      heapBeforeKb: heapBefore?.usedHeapKb ?? Number.NaN,
      heapAfterRoundsKb: heap.map((x) => Math.round(x)).join(" "),
      heapCommittedAfterRoundsKb: heapCommitted.map((x) => Math.round(x)).join(" "),
      rssCurveMb: curve.map((x) => x.toFixed(1)).join(" ")
    }
  }
}

export const churn: Scenario = {
  id: "churn",
  title: "connection churn",
  description:
    "3 rounds of N (5000 full / 300 quick; --churn N) connect-subscribe-publish-receive-disconnect cycles, 50 at a time: RSS after each round, " +
    "round 3 / round 1 (target ≤ 1.3), Node brokers' heap after a full GC, round 3 / before (target ≤ 1.1)",
  metrics: [
    { key: "rssRound1", label: "churn RSS after round 1", unit: "MB", better: "lower" },
    { key: "rssRound3", label: "churn RSS after round 3", unit: "MB", better: "lower" },
    { key: "rssGrowth", label: "churn RSS round 3 / round 1", unit: "×", better: "lower" },
    { key: "heapVsBefore", label: "churn heap round 3 / before", unit: "×", better: "lower", ratio: false },
    { key: "heapGrowth", label: "churn heap round 3 / round 1", unit: "×", better: "lower", ratio: false },
    { key: "cyclesPerSecond", label: "churn cycles/s", unit: "cycles/s", better: "higher" }
  ],
  brokerProfile: "heap",
  timeoutMs: 300_000,
  run
}
