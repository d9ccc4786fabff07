/**
 * Throughput scenarios (fan-in and fan-out). Publishers write pre-encoded,
 * batched PUBLISH packets as fast as flow control allows:
 *  - socket backpressure (a publisher waits for 'drain' once write() says so),
 *  - QoS 1: at most `window` PUBLISHes per publisher awaiting PUBACK, and a
 *    generator-side cap of `backlog` deliveries owed to the subscribers
 *    (published × subscribers − received).
 * QoS 0 publishers are NOT paced beyond TCP backpressure: QoS 0 has no flow
 * control in the protocol, so what a broker does when publishers outrun a
 * subscriber (queue, drop, or slow the publishers down by reading less) is
 * exactly what these scenarios show, as the rate received plus a `loss %`
 * beside it. (An earlier version capped QoS 0 at 20,000 owed deliveries; that
 * kept every broker's queue short and hid the drops of a broker that sheds
 * QoS 0 load.) Subscribers read as fast as the generator's event loop lets
 * them: every chunk is parsed as it arrives, nothing is deferred.
 * The rate is what the subscribers receive during the measured window, after a
 * warm-up. Afterwards publishing stops and in-flight messages are drained, so
 * loss / duplicates / reordering cover every message sent.
 */
import type { RawClient } from "../lib/client.ts"
import { sleep } from "../lib/client.ts"
import { closeAll, connectClient, CpuWindow, inWaves, runTag, waitFor } from "../lib/common.ts"
import { statusKb } from "../lib/procs.ts"
import { integrity, Receiver } from "../lib/stats.ts"
import type { Params, RunContext, RunResult, Scenario } from "../lib/types.ts"
import { buildBatch, OFF_SEQ, PAYLOAD_HEADER, publishTemplate } from "../lib/wire.ts"
import type { PublishTemplate } from "../lib/wire.ts"

interface Publisher {
  readonly client: RawClient
  readonly template: PublishTemplate
  /** next sequence number == messages sent so far */
  seq: number
  blocked: boolean
  inflight: number
  readonly inflightIds: Uint8Array
  nextId: number
  readonly ids: Array<number>
  strayAcks: number
}

/** Who publishes and who subscribes in a throughput run. */
export interface Topology {
  readonly kind: "fan-in" | "fan-out"
  readonly publishers: number
  readonly subscribers: number
  readonly qos: 0 | 1
  /** Subscribers connect with clean session 0: their sessions outlive them (and are what a persistent broker writes). */
  readonly persistentSubscribers?: boolean
}

const topicOf = (t: Topology, p: number): string => (t.kind === "fan-in" ? `bench/in/${p}` : "bench/out")
const filterOf = (t: Topology): string => (t.kind === "fan-in" ? "#" : "bench/out")

/**
 * Several brokers acting as one (cluster nodes, or `--workers`): where the clients connect and
 * whose CPU is the broker's. Without it a run uses ctx.broker alone.
 */
export interface Targets {
  /** subscriber i connects to ports[i % n], publisher p to ports[p % n]: spread over the nodes */
  readonly ports: ReadonlyArray<number>
  /** processes whose CPU counts as the broker's (every node or worker, and the Redis server) */
  readonly pids: ReadonlyArray<number>
  /**
   * pause between the last SUBACK and the first PUBLISH: a cluster node learns another node's
   * new filter through Redis, after that node's SUBACK, and would not forward to it before
   */
  readonly settleMs?: number
}

/** Runs one throughput topology against ctx.broker (or `targets`) and counts rate, loss and CPU. */
export const runThroughput = async (ctx: RunContext, topo: Topology, targets?: Targets): Promise<RunResult> => {
  const prm = ctx.params
  const tag = runTag()
  const ports = targets?.ports ?? [ctx.broker.port]
  const portOf = (i: number): number => ports[i % ports.length]!

  // --- subscribers --------------------------------------------------------
  const receivers: Array<Receiver> = []
  const subs: Array<RawClient> = []
  let kick = (): void => {}
  await inWaves(topo.subscribers, 25, async (i) => {
    const { client } = await connectClient(
      ctx,
      { clientId: `${tag}s${i}`, clean: topo.persistentSubscribers !== true, keepalive: 0 },
      undefined,
      portOf(i)
    )
    const rcv = new Receiver(topo.publishers)
    client.publishHook = (buf, ps, pe) => {
      if (pe - ps < PAYLOAD_HEADER) rcv.foreign++
      else rcv.record(buf.readUInt16BE(ps), buf.readUInt32BE(ps + OFF_SEQ))
    }
    client.chunkHook = () => kick()
    await client.subscribe([{ topic: filterOf(topo), qos: topo.qos }])
    receivers[i] = rcv
    subs[i] = client
  })

  // --- publishers ---------------------------------------------------------
  const pubs: Array<Publisher> = await inWaves(topo.publishers, 25, async (p) => {
    const { client } = await connectClient(ctx, { clientId: `${tag}p${p}`, clean: true, keepalive: 0 }, undefined, portOf(p))
    const pub: Publisher = {
      client,
      template: publishTemplate(topicOf(topo, p), topo.qos, prm.payload, p),
      seq: 0,
      blocked: false,
      inflight: 0,
      inflightIds: new Uint8Array(65536),
      nextId: 1,
      ids: [],
      strayAcks: 0
    }
    client.pubackHook = (id) => {
      if (pub.inflightIds[id] === 1) {
        pub.inflightIds[id] = 0
        pub.inflight--
      } else pub.strayAcks++
    }
    client.chunkHook = () => kick()
    return pub
  })

  if (targets?.settleMs !== undefined) await sleep(targets.settleMs)

  // --- the pump -------------------------------------------------------------
  let running = false
  let scheduled = false
  let totalSent = 0
  const totalReceived = (): number => {
    let n = 0
    for (const s of subs) n += s.received
    return n
  }
  const topUp = Math.max(1, Math.floor(prm.window / 4))
  const pump = (): void => {
    scheduled = false
    if (!running || ctx.aborted) return
    // QoS 1: deliveries still owed to subscribers, summed over subscribers.
    // QoS 0: unlimited, only socket backpressure holds a publisher back.
    let room = topo.qos === 1
      ? Math.floor((prm.backlog - (totalSent * subs.length - totalReceived())) / subs.length)
      : Number.POSITIVE_INFINITY
    let progressed = false
    for (const p of pubs) {
      if (room <= 0) break
      if (p.blocked || p.client.closed) continue
      let n = Math.min(prm.batch, room)
      if (topo.qos === 1) {
        n = Math.min(n, prm.window - p.inflight)
        // top the window up in batches (fewer, larger writes), not one PUBACK at a time
        if (n < topUp && n < room) continue
      }
      if (n <= 0) continue
      let ids: Array<number> | undefined
      if (topo.qos === 1) {
        ids = p.ids
        for (let k = 0; k < n; k++) {
          let id = p.nextId
          // bounded: at most `window` (< 65535) ids are in flight
          while (p.inflightIds[id] === 1) id = id === 65535 ? 1 : id + 1
          p.inflightIds[id] = 1
          ids[k] = id
          p.nextId = id === 65535 ? 1 : id + 1
        }
        p.inflight += n
      }
      const buf = buildBatch(p.template, n, p.seq, ids, false)
      p.seq += n
      totalSent += n
      room -= n
      progressed = true
      if (!p.client.write(buf)) {
        p.blocked = true
        p.client.socket.once("drain", () => {
          p.blocked = false
          kick()
        })
      }
    }
    if (progressed) kick()
  }
  kick = (): void => {
    if (!scheduled && running) {
      scheduled = true
      setImmediate(pump)
    }
  }

  // --- warm-up, measured window --------------------------------------------
  const cpu = new CpuWindow(targets?.pids ?? ctx.broker.pid)
  running = true
  kick()
  await sleep(prm.warmupMs)
  const recv0 = totalReceived()
  const sent0 = totalSent
  cpu.start()
  await sleep(prm.durationMs)
  const recv1 = totalReceived()
  const sent1 = totalSent
  cpu.stop()
  running = false

  // --- drain whatever is in flight, then count -------------------------------
  // QoS 0 messages a broker dropped never arrive: there the drain ends once nothing
  // has arrived for `stallMs` (everything in flight has been delivered or shed), and
  // the difference is loss, not an undrained run. QoS 1 must deliver everything.
  const ended = await waitFor(
    ctx,
    () => subs.every((s) => s.received >= totalSent) && pubs.every((p) => p.inflight === 0),
    { timeoutMs: prm.drainTimeoutMs, stallMs: prm.stallMs, progress: totalReceived }
  )
  const drained = ended === "done" || (topo.qos === 0 && ended === "stalled")
  // several processes: the largest one's peak
  const peak = Math.max(...(targets?.pids ?? [ctx.broker.pid]).map((pid) => statusKb(pid, "VmHWM")))
  const closedEarly = [...subs, ...pubs.map((p) => p.client)].filter((c) => c.closed).length
  await closeAll(ctx)

  const seconds = cpu.wallMs / 1000
  const integ = integrity(receivers, pubs.map((p) => p.seq))
  return {
    metrics: {
      rate: (recv1 - recv0) / seconds,
      // over every message sent (warm-up, window and drain), per subscriber
      lossPct: integ.expected === 0 ? 0 : (integ.lost / integ.expected) * 100
    },
    integrity: integ,
    generatorCpu: cpu.generator,
    brokerCpu: cpu.broker,
    otherCpu: cpu.other,
    brokerPeakRssKb: peak,
    extra: {
      publishers: topo.publishers,
      subscribers: topo.subscribers,
      qos: topo.qos,
      publishRate: (sent1 - sent0) / seconds,
      // several broker processes: % of a core each, in the order of targets.pids
      ...(targets === undefined ? {} : { brokerCpuEach: cpu.brokerEach.map((x) => Math.round(x)).join(" ") }),
      sent: totalSent,
      drained,
      drainEnded: ended,
      unackedPublishes: pubs.reduce((a, p) => a + p.inflight, 0),
      strayPubacks: pubs.reduce((a, p) => a + p.strayAcks, 0),
      connectionsClosedEarly: closedEarly,
      subscriberMsgsPerRead: totalReceived() / Math.max(1, subs.reduce((a, c) => a + c.chunks, 0))
    }
  }
}

const throughputScenario = (
  id: string,
  title: string,
  description: string,
  unit: string,
  qos: 0 | 1,
  topo: (p: Params) => Topology
): Scenario => ({
  id,
  title,
  description,
  // QoS 0 may be shed by design, so its rate is only meaningful with the loss beside it;
  // QoS 1 loss is a bug and shows in the integrity table instead
  metrics: qos === 0
    ? [
      { key: "rate", label: title, unit, better: "higher" },
      { key: "lossPct", label: `${title} loss`, unit: "%", better: "lower", ratio: false }
    ]
    : [{ key: "rate", label: title, unit, better: "higher" }],
  run: (ctx) => runThroughput(ctx, topo(ctx.params))
})

/** 8 publishers → 1 subscriber on #, QoS 0, publishers unpaced. */
export const fanInQos0 = throughputScenario(
  "fanin-q0",
  "fan-in 8→1 QoS0",
  "8 publishers on bench/in/<i> → 1 subscriber on #, QoS 0; messages/s received by the subscriber",
  "msg/s",
  0,
  (p) => ({ kind: "fan-in", publishers: p.fanInPublishers, subscribers: 1, qos: 0 })
)

/** 8 QoS 1 publishers → 1 QoS 1 subscriber. */
export const fanInQos1 = throughputScenario(
  "fanin-q1",
  "fan-in 8→1 QoS1",
  "8 publishers (QoS 1, window of in-flight PUBLISHes each) → 1 subscriber on # at QoS 1 that PUBACKs everything; messages/s received",
  "msg/s",
  1,
  (p) => ({ kind: "fan-in", publishers: p.fanInPublishers, subscribers: 1, qos: 1 })
)

/**
 * fan-in QoS 1 with ours' sessions on disk (`--persistence sqlite`) and a persistent subscriber
 * (clean session 0: a clean one is never written): compare with fan-in QoS 1 on memory.
 */
export const fanInQos1Sqlite: Scenario = {
  ...throughputScenario(
    "fanin-q1-sqlite",
    "QoS 1 fan-in, sqlite",
    `${fanInQos1.description}, the subscriber with clean session 0; sessions on disk (ours: --persistence sqlite, write-through with group commit)`,
    "msg/s",
    1,
    (p) => ({ kind: "fan-in", publishers: p.fanInPublishers, subscribers: 1, qos: 1, persistentSubscribers: true })
  ),
  brokerProfile: "sqlite"
}

/** 32 publishers → 1 subscriber, QoS 0, publishers unpaced (issue 10: loss at full speed). */
export const fanInQos0High = throughputScenario(
  "fanin-q0-32",
  "fan-in 32→1 QoS0",
  "as fan-in QoS 0 with 32 publishers; compare with 8 publishers (throughput should not fall as publishers grow)",
  "msg/s",
  0,
  (p) => ({ kind: "fan-in", publishers: p.fanInPublishersHigh, subscribers: 1, qos: 0 })
)

/** 1 publisher → 50 subscribers, QoS 0, publisher unpaced. */
export const fanOutQos0 = throughputScenario(
  "fanout-q0",
  "fan-out 1→50 QoS0",
  "1 publisher on bench/out → 50 subscribers on bench/out, QoS 0; deliveries/s summed over subscribers",
  "deliv/s",
  0,
  (p) => ({ kind: "fan-out", publishers: 1, subscribers: p.fanOutSubscribers, qos: 0 })
)

/** 1 QoS 1 publisher → 50 QoS 1 subscribers. */
export const fanOutQos1 = throughputScenario(
  "fanout-q1",
  "fan-out 1→50 QoS1",
  "1 QoS 1 publisher → 50 subscribers at QoS 1 (each PUBACKs); deliveries/s summed over subscribers",
  "deliv/s",
  1,
  (p) => ({ kind: "fan-out", publishers: 1, subscribers: p.fanOutSubscribers, qos: 1 })
)
