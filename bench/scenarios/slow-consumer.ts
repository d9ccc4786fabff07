/**
 * Slow consumer (issue 10, isolation): does one subscriber that stops reading
 * slow the healthy ones down, make them lose messages, or grow the broker's
 * memory without bound?
 *
 * `slowPublishers` QoS 1 publishers (window of `window` PUBLISHes each) send
 * `slowPayload`-byte messages to `bench/slow/<run>/<p>`; `slowHealthy`
 * subscribers on `bench/slow/<run>/#` at QoS 1 read and PUBACK everything.
 *
 * Phase A ("alone"): `slowMessages` messages with only the healthy subscribers.
 * Phase B ("stalled sub"): one more client connects, subscribes at QoS 1 to the
 * same filter, then pauses its socket: it never reads again, so it never
 * acknowledges anything and the broker's writes to it back up (first into the
 * kernel's socket buffers, then into whatever the broker keeps). Then
 * `slowMessages` more messages.
 *
 * Each phase ends when every healthy subscriber has every message sent, or
 * when nothing arrived for `stallMs` (a broker that shed messages, or lets the
 * stalled client hold everyone back), or after 3 minutes; its rate is the
 * healthy subscribers' deliveries up to the last one (what never came shows as
 * loss, with a note), or over the whole phase, stall included, when the
 * publishers could not send everything (the broker stopped acknowledging them).
 * Reported: both rates and their ratio (target ≥ 0.9), broker RSS growth
 * (VmRSS sampled every 50 ms during phase B, maximum minus the value just
 * before it; target ≤ 100 MB), and messages the healthy subscribers lost.
 *
 * Brokers run with their default settings (profile "defaults"): what a slow
 * consumer costs is decided by each broker's own queue policy, and the bench
 * profile's million-message queues would only measure that setting.
 */
import type { RawClient } from "../lib/client.ts"
import { sleep } from "../lib/client.ts"
import { closeAll, connectClient, CpuWindow, inWaves, runTag, waitFor } from "../lib/common.ts"
import type { WaitEnd } from "../lib/common.ts"
import { statusKb } from "../lib/procs.ts"
import { WindowedPublisher } from "../lib/qos1-publisher.ts"
import { integrity, Receiver } from "../lib/stats.ts"
import type { RunContext, RunResult, Scenario } from "../lib/types.ts"
import { OFF_SEQ, PAYLOAD_HEADER, publishTemplate } from "../lib/wire.ts"

/** Samples a process's VmRSS on a timer and keeps the maximum. */
class RssPeak {
  max = Number.NaN
  private readonly timer: NodeJS.Timeout
  constructor(pid: number, everyMs: number) {
    const sample = (): void => {
      const kb = statusKb(pid)
      if (!(kb <= this.max)) this.max = kb
    }
    sample()
    this.timer = setInterval(sample, everyMs)
  }
  stop(): void {
    clearInterval(this.timer)
  }
}

interface PhaseResult {
  readonly rate: number
  readonly ms: number
  readonly ended: WaitEnd
  /** the publishers could not send their quota (PUBACKs stopped coming) */
  readonly blocked: boolean
}

const run = async (ctx: RunContext): Promise<RunResult> => {
  const prm = ctx.params
  const tag = runTag()
  const filter = `bench/slow/${tag}/#`

  // --- healthy subscribers, publishers ------------------------------------------
  const receivers: Array<Receiver> = []
  const healthy: Array<RawClient> = await inWaves(prm.slowHealthy, 25, async (i) => {
    const { client } = await connectClient(ctx, { clientId: `${tag}h${i}`, clean: true, keepalive: 0 })
    const rcv = new Receiver(prm.slowPublishers)
    client.publishHook = (buf, ps, pe) => {
      if (pe - ps < PAYLOAD_HEADER) rcv.foreign++
      else rcv.record(buf.readUInt16BE(ps), buf.readUInt32BE(ps + OFF_SEQ))
    }
    await client.subscribe([{ topic: filter, qos: 1 }])
    receivers[i] = rcv
    return client
  })
  const pubs: Array<WindowedPublisher> = await inWaves(prm.slowPublishers, 25, async (p) => {
    const { client } = await connectClient(ctx, { clientId: `${tag}p${p}`, clean: true, keepalive: 0 })
    return new WindowedPublisher(client, publishTemplate(`bench/slow/${tag}/${p}`, 1, prm.slowPayload, p), prm.window)
  })

  const delivered = (): number => receivers.reduce((a, r) => a + r.unique, 0)
  const runPhase = async (messages: number): Promise<PhaseResult> => {
    const before = delivered()
    const t0 = performance.now()
    let last = before
    let lastAt = t0
    // the rate runs to the last delivery: a broker that shed messages would otherwise be
    // charged the stallMs spent finding out; what it shed shows as loss instead
    const progress = (): number => {
      const d = delivered()
      if (d !== last) {
        last = d
        lastAt = performance.now()
      }
      return d
    }
    pubs.forEach((p, i) => p.publish(Math.floor(messages / pubs.length) + (i < messages % pubs.length ? 1 : 0)))
    const ended = await waitFor(
      ctx,
      () => pubs.every((p) => p.done) && receivers.every((r) => r.unique === pubs.reduce((a, p) => a + p.seq, 0)),
      { timeoutMs: 180_000, stallMs: prm.stallMs, progress, pollMs: 5 }
    )
    progress()
    // publishers not done = the broker stopped taking messages (held everyone back): charge
    // the whole phase, stall included, or a broker that blocks after 0.5 s would look fast
    const blocked = !pubs.every((p) => p.done)
    const ms = (ended === "done" || blocked ? performance.now() : lastAt) - t0
    return { rate: (delivered() - before) / (ms / 1000), ms, ended, blocked }
  }

  // --- phase A: healthy subscribers only ----------------------------------------
  const alone = await runPhase(prm.slowMessages)
  // the phase ended complete or quiet, so whatever is missing now never comes
  const lostAlone = integrity(receivers, pubs.map((p) => p.seq)).lost

  // --- phase B: plus one subscriber that never reads again ---------------------------
  const { client: slow } = await connectClient(ctx, { clientId: `${tag}slow`, clean: true, keepalive: 0 })
  slow.autoAck = false
  await slow.subscribe([{ topic: filter, qos: 1 }])
  slow.socket.pause()
  await sleep(100)
  const rssBefore = statusKb(ctx.broker.pid)
  const rss = new RssPeak(ctx.broker.pid, 50)
  const cpu = new CpuWindow(ctx.broker.pid)
  cpu.start()
  const stalled = await runPhase(prm.slowMessages)
  cpu.stop()
  rss.stop()
  const rssAfter = statusKb(ctx.broker.pid)
  const peak = statusKb(ctx.broker.pid, "VmHWM")
  const closedEarly = [...healthy, ...pubs.map((p) => p.client)].filter((c) => c.closed).length
  const slowClosed = slow.closed
  await closeAll(ctx)

  const integ = integrity(receivers, pubs.map((p) => p.seq))
  const growthMb = (Math.max(rss.max, rssAfter) - rssBefore) / 1024
  return {
    metrics: {
      rateAlone: alone.rate,
      rateStalled: stalled.rate,
      rateRatio: stalled.rate / alone.rate,
      rssGrowthMb: growthMb,
      healthyLostAlone: lostAlone,
      healthyLostStalled: integ.lost - lostAlone
    },
    integrity: integ,
    generatorCpu: cpu.generator,
    brokerCpu: cpu.broker,
    otherCpu: cpu.other,
    brokerPeakRssKb: peak,
    extra: {
      messagesPerPhase: prm.slowMessages,
      payload: prm.slowPayload,
      healthySubscribers: prm.slowHealthy,
      publishers: prm.slowPublishers,
      phaseAloneMs: alone.ms,
      phaseStalledMs: stalled.ms,
      phaseAloneEnded: alone.ended,
      phaseStalledEnded: stalled.ended,
      // a stalled phase is reported through the rate and the loss, not as an undrained run
      drained: alone.ended !== "timeout" && stalled.ended !== "timeout",
      sent: pubs.reduce((a, p) => a + p.seq, 0),
      unackedPublishes: pubs.reduce((a, p) => a + p.inflight, 0),
      strayPubacks: pubs.reduce((a, p) => a + p.strayAcks, 0),
      rssBeforeStalledKb: rssBefore,
      rssMaxStalledKb: rss.max,
      rssAfterStalledKb: rssAfter,
      slowSubscriberClosedByBroker: slowClosed,
      note: [
        alone.ended === "done" ? "" : `phase without the stalled subscriber ended ${alone.ended} (healthy subscribers got nothing for ${prm.stallMs / 1000} s)`,
        stalled.ended === "done"
          ? ""
          : `phase with the stalled subscriber ended ${stalled.ended} (healthy subscribers got nothing for ${prm.stallMs / 1000} s)`,
        alone.blocked || stalled.blocked
          ? `publishers blocked (PUBACKs stopped): ${pubs.reduce((a, p) => a + p.seq - p.inflight, 0)} of ${2 * prm.slowMessages} messages accepted`
          : "",
        slowClosed ? "the broker closed the stalled subscriber's connection" : ""
      ].filter((s) => s !== "").join("; "),
      connectionsClosedEarly: closedEarly
    }
  }
}

/** Healthy QoS 1 subscribers' rate, loss and broker memory with and without one subscriber that stops reading. */
export const slowConsumer: Scenario = {
  id: "slow-consumer",
  title: "slow consumer",
  description:
    "2 QoS 1 publishers → 3 healthy QoS 1 subscribers, 200,000 (quick: 2,000) 1 KB messages per phase; phase B adds a QoS 1 " +
    "subscriber that pauses its socket: healthy rate with/without, broker RSS growth, healthy loss",
  metrics: [
    { key: "rateAlone", label: "healthy subs alone", unit: "deliv/s", better: "higher" },
    { key: "rateStalled", label: "healthy subs w/ stalled sub", unit: "deliv/s", better: "higher" },
    { key: "rateRatio", label: "healthy rate with/without", unit: "x", better: "higher" },
    { key: "rssGrowthMb", label: "RSS growth w/ stalled sub", unit: "MB", better: "lower" },
    // per phase: a queue bound can drop for healthy-but-slower subscribers even without the stalled one
    { key: "healthyLostAlone", label: "healthy subs lost alone", unit: "msgs", better: "lower", ratio: false },
    { key: "healthyLostStalled", label: "healthy lost w/ stalled sub", unit: "msgs", better: "lower", ratio: false }
  ],
  brokerProfile: "defaults",
  timeoutMs: 420_000,
  run
}
