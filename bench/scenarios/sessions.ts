/**
 * Persistent sessions: N clients CONNECT with clean session = 0, SUBSCRIBE at
 * QoS 1 to their own topic and DISCONNECT. A publisher then sends M QoS 1
 * messages to each of those topics (window of in-flight PUBLISHes, waits for
 * every PUBACK). All N clients reconnect at once (clean = 0); the drain time
 * runs from the first reconnect until every client has received its M
 * messages. Also checks every CONNACK has sessionPresent = 1.
 */
import { sleep } from "../lib/client.ts"
import { closeAll, connectClient, CpuWindow, inWaves, runTag, waitUntil } from "../lib/common.ts"
import { statusKb } from "../lib/procs.ts"
import { integrity, Receiver } from "../lib/stats.ts"
import type { RunContext, RunResult, Scenario } from "../lib/types.ts"
import { buildBatch, OFF_PUB, OFF_SEQ, PAYLOAD_HEADER, publishTemplate } from "../lib/wire.ts"

const topicOf = (i: number): string => `bench/ps/${i}`

const run = async (ctx: RunContext): Promise<RunResult> => {
  const prm = ctx.params
  const tag = runTag()
  const N = prm.sessions
  const M = prm.sessionMessages
  const idOf = (i: number): string => `${tag}c${i}`

  // 1. create the sessions
  await inWaves(N, 50, async (i) => {
    const { client } = await connectClient(ctx, { clientId: idOf(i), clean: false, keepalive: 0 })
    await client.subscribe([{ topic: topicOf(i), qos: 1 }])
    await client.disconnect()
    ctx.clients.delete(client)
  })
  await sleep(100)

  // 2. publish M QoS 1 messages to every topic, round robin, window of in-flight PUBLISHes
  const { client: pub } = await connectClient(ctx, { clientId: `${tag}pub`, clean: true, keepalive: 0 })
  const templates = Array.from({ length: N }, (_, i) => publishTemplate(topicOf(i), 1, prm.payload, i))
  const total = N * M
  let next = 0
  let acked = 0
  let inflight = 0
  let nextId = 1
  const inflightIds = new Uint8Array(65536)
  let stray = 0
  const fill = (): void => {
    const parts: Array<Buffer> = []
    while (inflight < prm.window && next < total) {
      let id = nextId
      while (inflightIds[id] === 1) id = id === 65535 ? 1 : id + 1
      inflightIds[id] = 1
      nextId = id === 65535 ? 1 : id + 1
      // message k goes to topic k % N with sequence floor(k / N)
      parts.push(buildBatch(templates[next % N]!, 1, Math.floor(next / N), [id], false))
      next++
      inflight++
    }
    if (parts.length > 0) pub.write(Buffer.concat(parts))
  }
  pub.pubackHook = (id) => {
    if (inflightIds[id] === 1) {
      inflightIds[id] = 0
      inflight--
      acked++
    } else stray++
  }
  pub.chunkHook = fill
  const tPub = performance.now()
  fill()
  const published = await waitUntil(ctx, () => acked === total, { timeoutMs: 60_000, stallMs: Math.max(prm.stallMs, 3_000), progress: () => acked })
  const publishMs = performance.now() - tPub
  await pub.disconnect()
  ctx.clients.delete(pub)

  // 3. reconnect everyone at once and time the drain
  const receivers = Array.from({ length: N }, () => new Receiver(1))
  const doneAt = new Float64Array(N)
  let completed = 0
  let received = 0
  let dupFlagged = 0
  const cpu = new CpuWindow(ctx.broker.pid)
  cpu.start()
  const t0 = performance.now()
  const connacks = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const rcv = receivers[i]!
      try {
        const { connack } = await connectClient(ctx, { clientId: idOf(i), clean: false, keepalive: 0 }, (client) => {
          client.publishHook = (buf, ps, pe, _qos, _id, dup) => {
            received++
            if (dup) dupFlagged++
            if (pe - ps < PAYLOAD_HEADER || buf.readUInt16BE(ps + OFF_PUB) !== i) {
              rcv.foreign++
              return
            }
            const before = rcv.unique
            rcv.record(0, buf.readUInt32BE(ps + OFF_SEQ))
            if (before < M && rcv.unique === M) {
              doneAt[i] = performance.now()
              completed++
            }
          }
        })
        return connack.sessionPresent ? 1 : 0
      } catch {
        return -1
      }
    })
  )
  const drained = await waitUntil(ctx, () => completed === N, {
    timeoutMs: 60_000,
    stallMs: Math.max(prm.stallMs, 3_000),
    progress: () => received
  })
  const drainMs = (drained ? Math.max(...doneAt) : performance.now()) - t0
  cpu.stop()
  const peak = statusKb(ctx.broker.pid, "VmHWM")
  await closeAll(ctx)

  const sessionPresent = connacks.filter((c) => c === 1).length
  return {
    metrics: { drainMs, drainRate: total / (drainMs / 1000) },
    integrity: integrity(receivers, [M]),
    generatorCpu: cpu.generator,
    brokerCpu: cpu.broker,
    otherCpu: cpu.other,
    brokerPeakRssKb: peak,
    extra: {
      clients: N,
      messagesPerClient: M,
      sessionPresentAll: sessionPresent === N,
      sessionPresentMissing: N - sessionPresent,
      reconnectFailures: connacks.filter((c) => c === -1).length,
      dupFlagged,
      drained,
      allPublishesAcked: published,
      publishMs,
      strayPubacks: stray
    }
  }
}

export const sessions: Scenario = {
  id: "persistent-sessions",
  title: "persistent session drain",
  description: "N clients (100 full / 10 quick) with clean=0 subscribe at QoS 1 and go offline; M QoS 1 messages each (100 / 10) are published; time from reconnect until all are delivered",
  metrics: [{ key: "drainMs", label: "persistent session drain", unit: "ms", better: "lower" }],
  timeoutMs: 180_000,
  run
}

/** The same drain with ours' sessions on disk (`--persistence sqlite`): compare with the memory row. */
export const sessionsSqlite: Scenario = {
  ...sessions,
  id: "persistent-sessions-sqlite",
  title: "sessions drain, sqlite",
  description: `${sessions.description}; sessions on disk (ours: --persistence sqlite)`,
  metrics: [{ key: "drainMs", label: "sessions drain, sqlite", unit: "ms", better: "lower" }],
  brokerProfile: "sqlite"
}
