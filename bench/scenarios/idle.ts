/**
 * Memory per idle connection: RSS of the freshly started broker, then N
 * clients CONNECT (clean session, keepalive 0) and stay silent; once the broker
 * is at rest (3 s after the last CONNACK) its RSS is read again. (after - before)
 * / N = KB per connection. "Lost" counts connections that failed or were closed.
 * At rest, not at once: what a broker holds for idle clients is what it keeps,
 * not the garbage of their handshakes (ours gives that back within 1 s of the
 * quiet, README "Memory"; a 1 s settle raced it).
 */
import type { RawClient } from "../lib/client.ts"
import { sleep } from "../lib/client.ts"
import { closeAll, connectClient, CpuWindow, inWaves, runTag } from "../lib/common.ts"
import { statusKb } from "../lib/procs.ts"
import type { RunContext, RunResult, Scenario } from "../lib/types.ts"

const run = async (ctx: RunContext): Promise<RunResult> => {
  const prm = ctx.params
  const tag = runTag()
  const settleMs = prm.quick ? 300 : 3_000
  const pid = ctx.broker.pid

  await sleep(settleMs)
  const before = statusKb(pid)
  const cpu = new CpuWindow(pid)
  cpu.start()
  const t0 = performance.now()
  let failed = 0
  const clients: Array<RawClient | undefined> = await inWaves(prm.idleConnections, 100, async (i) => {
    try {
      const { client } = await connectClient(ctx, { clientId: `${tag}i${i}`, clean: true, keepalive: 0 })
      return client
    } catch {
      failed++
      return undefined
    }
  })
  const connectMs = performance.now() - t0
  cpu.stop()
  await sleep(settleMs)
  const after = statusKb(pid)
  const alive = clients.filter((c) => c !== undefined && !c.closed).length
  const peak = statusKb(pid, "VmHWM")
  await closeAll(ctx)

  const n = prm.idleConnections
  return {
    metrics: { kbPerConn: (after - before) / Math.max(1, alive) },
    integrity: { expected: n, received: alive, lost: n - alive, duplicates: 0, reordered: 0 },
    generatorCpu: cpu.generator,
    brokerCpu: cpu.broker,
    otherCpu: cpu.other,
    brokerPeakRssKb: peak,
    extra: {
      connections: n,
      failed,
      rssBeforeKb: before,
      rssAfterKb: after,
      connectMs,
      connectsPerSecond: n / (connectMs / 1000)
    }
  }
}

export const idle: Scenario = {
  id: "idle-conns",
  title: "idle connections",
  description: "N idle MQTT connections (2000 full / 200 quick, keepalive 0); broker RSS growth per connection from /proc/<pid>/status VmRSS",
  metrics: [{ key: "kbPerConn", label: "memory per idle conn", unit: "KB/conn", better: "lower" }],
  run
}
