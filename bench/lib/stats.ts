/** Counting helpers: per-publisher sequence tracking, medians, percentiles. */

/**
 * Tracks what one receiver got from one publisher (sequence numbers start at
 * 0). A growable bitset gives exact duplicate counts; a message whose sequence
 * is below the highest one already seen is counted as reordered.
 */
export class SeqTracker {
  private bits: Uint8Array = new Uint8Array(1024)
  unique = 0
  duplicates = 0
  reordered = 0
  maxSeen = -1

  record(seq: number): void {
    const byte = seq >>> 3
    if (byte >= this.bits.length) {
      let n = this.bits.length * 2
      while (n <= byte) n *= 2
      const next = new Uint8Array(n)
      next.set(this.bits)
      this.bits = next
    }
    const mask = 1 << (seq & 7)
    if ((this.bits[byte]! & mask) !== 0) {
      this.duplicates++
      return
    }
    this.bits[byte] = this.bits[byte]! | mask
    this.unique++
    if (seq < this.maxSeen) this.reordered++
    else this.maxSeen = seq
  }
}

/** A receiver's trackers, indexed by publisher index. */
export class Receiver {
  readonly perPublisher: Array<SeqTracker>
  /** messages whose publisher index was out of range (should stay 0) */
  foreign = 0
  constructor(publishers: number) {
    this.perPublisher = Array.from({ length: publishers }, () => new SeqTracker())
  }
  record(pub: number, seq: number): void {
    const t = this.perPublisher[pub]
    if (t === undefined) this.foreign++
    else t.record(seq)
  }
  get unique(): number {
    let n = 0
    for (const t of this.perPublisher) n += t.unique
    return n
  }
  get duplicates(): number {
    let n = 0
    for (const t of this.perPublisher) n += t.duplicates
    return n
  }
  get reordered(): number {
    let n = 0
    for (const t of this.perPublisher) n += t.reordered
    return n
  }
}

export interface Integrity {
  /** messages the receivers should have got in total */
  readonly expected: number
  /** unique messages they got */
  readonly received: number
  readonly lost: number
  readonly duplicates: number
  readonly reordered: number
}

/**
 * `expectedPerPublisher[p]` = how many messages publisher p sent (each receiver
 * should get all of them).
 */
export const integrity = (receivers: ReadonlyArray<Receiver>, expectedPerPublisher: ReadonlyArray<number>): Integrity => {
  let expected = 0
  let received = 0
  let duplicates = 0
  let reordered = 0
  let lost = 0
  for (const r of receivers) {
    for (let p = 0; p < expectedPerPublisher.length; p++) {
      const t = r.perPublisher[p]!
      const e = expectedPerPublisher[p]!
      expected += e
      received += t.unique
      duplicates += t.duplicates
      reordered += t.reordered
      lost += Math.max(0, e - t.unique)
    }
    duplicates += r.foreign
  }
  return { expected, received, lost, duplicates, reordered }
}

/** Median of the finite values (NaN when there are none). */
export const median = (xs: ReadonlyArray<number>): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Nearest-rank percentile of an already sorted array, q in [0, 100]. */
export const percentileSorted = (sorted: Float64Array, q: number): number => {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((q / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

/** CPU time of this process, as % of one core, between two cpuUsage samples. */
export const cpuPercent = (used: NodeJS.CpuUsage, wallMs: number): number =>
  wallMs <= 0 ? 0 : ((used.user + used.system) / 1000 / wallMs) * 100
