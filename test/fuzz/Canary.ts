/**
 * The canary: an ordinary mqtt.js client that subscribes to its own topic and publishes a
 * numbered QoS 1 stream to it for the whole campaign. Hostile clients must cost it nothing:
 * every message arrives, none twice, the connection never drops. It also watches `fuzz/will/#`,
 * where nothing may ever arrive (wills of clients that sent DISCONNECT, PUBLISHes sent after it).
 */
import mqtt from "mqtt"
import type { MqttClient } from "mqtt"

/** What the canary saw. */
export interface CanaryReport {
  readonly sent: number
  readonly received: number
  /** Sequence numbers published but never received. */
  readonly lost: ReadonlyArray<number>
  readonly duplicates: number
  /** Publish call → delivery, in ms. */
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** Times the canary's connection closed or errored during the run. */
  readonly disconnects: number
  readonly errors: ReadonlyArray<string>
  /** Messages that arrived on `fuzz/will/#`. */
  readonly strays: ReadonlyArray<{ readonly topic: string; readonly payload: string }>
}

const STREAM = "fuzz/canary/stream"
/** The topics no message may reach (see Probe.willTopicOf). */
export const WILL_WATCH = "fuzz/will/#"

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

/** A running canary. */
export class Canary {
  private readonly client: MqttClient
  private readonly sentAt = new Map<number, number>()
  private readonly latencies: Array<number> = []
  private readonly receivedSeqs = new Set<number>()
  private readonly strays: Array<{ topic: string; payload: string }> = []
  private readonly errors: Array<string> = []
  private duplicates = 0
  private disconnects = 0
  private next = 0
  private timer: NodeJS.Timeout | undefined
  private readonly wakers = new Set<() => void>()

  private constructor(client: MqttClient) {
    this.client = client
    client.on("message", (topic, payload) => {
      if (topic !== STREAM) {
        this.strays.push({ topic, payload: payload.toString() })
        return
      }
      const seq = Number(payload.toString())
      if (this.receivedSeqs.has(seq)) this.duplicates++
      else {
        this.receivedSeqs.add(seq)
        const at = this.sentAt.get(seq)
        if (at !== undefined) this.latencies.push(performance.now() - at)
      }
      for (const wake of [...this.wakers]) wake()
    })
    client.on("close", () => {
      this.disconnects++
    })
    client.on("error", (error) => {
      this.errors.push(error.message)
    })
  }

  /** Connects, subscribes (QoS 1) and starts publishing one message every `intervalMs`. */
  static async start(url: string, intervalMs: number): Promise<Canary> {
    const client = mqtt.connect(url, { clientId: `canary-${process.pid}`, clean: true, reconnectPeriod: 0, keepalive: 60, protocolVersion: 4 })
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve())
      client.once("error", reject)
    })
    // mqtt.js leaves Nagle on: with delayed ACKs that alone adds ~20–40 ms per message and would hide the broker's latency
    const stream = client.stream as { setNoDelay?: (noDelay: boolean) => void }
    stream.setNoDelay?.(true)
    const canary = new Canary(client)
    await client.subscribeAsync({ [STREAM]: { qos: 1 }, [WILL_WATCH]: { qos: 1 } })
    canary.timer = setInterval(() => canary.publishNext(), intervalMs)
    return canary
  }

  private publishNext(): void {
    const seq = this.next++
    this.sentAt.set(seq, performance.now())
    this.client.publish(STREAM, String(seq), { qos: 1 }, (error) => {
      if (error !== undefined && error !== null) this.errors.push(`publish ${seq}: ${error.message}`)
    })
  }

  /** Stops publishing, waits up to `drainMs` for the stream to arrive in full, disconnects and reports. */
  async stop(drainMs: number): Promise<CanaryReport> {
    clearInterval(this.timer)
    const sent = this.next
    const complete = () => this.receivedSeqs.size >= sent
    if (!complete()) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer)
          this.wakers.delete(check)
          resolve()
        }
        const check = () => {
          if (complete()) done()
        }
        const timer = setTimeout(done, drainMs)
        this.wakers.add(check)
      })
    }
    const disconnectsBeforeEnd = this.disconnects
    await this.client.endAsync()
    const lost: Array<number> = []
    for (let seq = 0; seq < sent; seq++) if (!this.receivedSeqs.has(seq)) lost.push(seq)
    const sorted = [...this.latencies].sort((a, b) => a - b)
    return {
      sent,
      received: this.receivedSeqs.size,
      lost,
      duplicates: this.duplicates,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.at(-1) ?? 0,
      disconnects: disconnectsBeforeEnd,
      errors: this.errors,
      strays: this.strays
    }
  }
}
