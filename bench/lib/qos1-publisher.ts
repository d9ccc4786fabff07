/**
 * A QoS 1 publisher with a window: keeps at most `window` PUBLISHes awaiting
 * PUBACK and tops the window up in batches (one socket write each) as acks
 * come back, until it has sent its quota. Sequence numbers continue across
 * quotas, so one receiver bitset covers every phase of a scenario.
 */
import type { RawClient } from "./client.ts"
import { buildBatch } from "./wire.ts"
import type { PublishTemplate } from "./wire.ts"

/** One windowed QoS 1 publisher on one connection. */
export class WindowedPublisher {
  readonly client: RawClient
  private readonly template: PublishTemplate
  private readonly window: number
  private readonly inflightIds = new Uint8Array(65536)
  private readonly ids: Array<number> = []
  private nextId = 1
  private blocked = false
  /** messages sent so far (== next sequence number) */
  seq = 0
  /** PUBLISHes awaiting PUBACK */
  inflight = 0
  /** PUBACKs for ids not in flight (should stay 0) */
  strayAcks = 0
  /** send until `seq` reaches this */
  quota = 0

  constructor(client: RawClient, template: PublishTemplate, window: number) {
    this.client = client
    this.template = template
    this.window = window
    client.pubackHook = (id) => {
      if (this.inflightIds[id] === 1) {
        this.inflightIds[id] = 0
        this.inflight--
      } else this.strayAcks++
    }
    // acks arrive in chunks: top up once per chunk, not once per PUBACK
    client.chunkHook = () => this.pump()
  }

  /** Raises the quota by `n` messages and starts sending. */
  publish(n: number): void {
    this.quota += n
    this.pump()
  }

  /** Whether every message of the quota was sent and acknowledged. */
  get done(): boolean {
    return this.seq === this.quota && this.inflight === 0
  }

  private pump(): void {
    if (this.blocked || this.client.closed) return
    const n = Math.min(this.window - this.inflight, this.quota - this.seq)
    // at least a quarter window per write unless it is the tail of the quota
    if (n <= 0 || (n < this.window / 4 && this.seq + n < this.quota)) return
    for (let k = 0; k < n; k++) {
      let id = this.nextId
      // bounded: at most `window` (< 65535) ids are in flight
      while (this.inflightIds[id] === 1) id = id === 65535 ? 1 : id + 1
      this.inflightIds[id] = 1
      this.ids[k] = id
      this.nextId = id === 65535 ? 1 : id + 1
    }
    this.inflight += n
    const buf = buildBatch(this.template, n, this.seq, this.ids, false)
    this.seq += n
    if (!this.client.write(buf)) {
      this.blocked = true
      this.client.socket.once("drain", () => {
        this.blocked = false
        this.pump()
      })
    }
  }
}
