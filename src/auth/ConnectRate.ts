/**
 * CONNECTs per second per source address: a token bucket per address, `perSecond` tokens deep and
 * refilled at `perSecond` a second, so an address may burst one second's worth and then keeps to
 * the rate. It keeps one address flooding CONNECTs (wrong passwords, or a reconnect loop) from
 * costing the broker a password check or session work per attempt while connected clients wait.
 *
 * Pure: the time is passed in (Effect's `Clock` at the call site), so tests drive it. The map is
 * bounded: a bucket that has filled up again is the same as a new one and is dropped, and past
 * `maxAddresses` the least recently seen address is forgotten (it starts again with a full bucket).
 */

/** The answer to one CONNECT. */
export type Verdict =
  | { readonly allowed: true }
  | {
    readonly allowed: false
    /**
     * Set on the refusal that should be logged, at most once a second per address: how many were
     * refused since the last logged one, this one included. `undefined`: refuse quietly.
     */
    readonly report: number | undefined
  }

interface Bucket {
  tokens: number
  /** When `tokens` was last brought up to date (ms). */
  at: number
  /** Refusals not logged yet, and when the last logged one was. */
  unreported: number
  reportedAt: number
}

const allowed: Verdict = { allowed: true }

/** Largest number of addresses remembered by default: a few hundred kB at most. */
export const DEFAULT_MAX_ADDRESSES = 10_000

/** The per-address buckets of one broker. */
export class ConnectRate {
  private readonly buckets = new Map<string, Bucket>()
  /** Tokens regained per millisecond. */
  private readonly perMs: number

  /** Tokens per second, and the bucket's depth. */
  readonly perSecond: number
  /** Addresses remembered at most. */
  readonly maxAddresses: number

  constructor(perSecond: number, maxAddresses: number = DEFAULT_MAX_ADDRESSES) {
    this.perSecond = perSecond
    this.maxAddresses = maxAddresses
    this.perMs = perSecond / 1000
  }

  /** Addresses remembered now (for tests and metrics). */
  get size(): number {
    return this.buckets.size
  }

  /** Takes a token for a CONNECT from `address` at `now` (ms). */
  take(address: string, now: number): Verdict {
    const bucket = this.refreshed(address, now)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return allowed
    }
    return this.refusal(bucket, now)
  }

  /**
   * Whether `address` has a token left at `now`, without taking one: for counting something
   * else than the attempts themselves (failed authentications) and refusing attempts while the
   * bucket is empty. Addresses never counted are allowed and not remembered.
   */
  check(address: string, now: number): Verdict {
    if (!this.buckets.has(address)) return allowed
    const bucket = this.refreshed(address, now)
    return bucket.tokens >= 1 ? allowed : this.refusal(bucket, now)
  }

  /** Takes a token from `address` if it has one: counts an event (a failed authentication) that `check` then limits. */
  spend(address: string, now: number): void {
    const bucket = this.refreshed(address, now)
    bucket.tokens = Math.max(0, bucket.tokens - 1)
  }

  /** The bucket of `address`, refilled up to `now` and moved to the most recently seen end. */
  private refreshed(address: string, now: number): Bucket {
    this.evictIdle(now)
    let bucket = this.buckets.get(address)
    if (bucket === undefined) {
      bucket = { tokens: this.perSecond, at: now, unreported: 0, reportedAt: -Infinity }
    } else {
      // re-inserted below: the map's order is least recently seen first
      this.buckets.delete(address)
      bucket.tokens = Math.min(this.perSecond, bucket.tokens + Math.max(0, now - bucket.at) * this.perMs)
      bucket.at = now
    }
    this.buckets.set(address, bucket)
    if (this.buckets.size > this.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!)
    return bucket
  }

  /** A refusal, carrying the count to log at most once a second per address. */
  private refusal(bucket: Bucket, now: number): Verdict {
    bucket.unreported++
    if (now - bucket.reportedAt < 1000) return { allowed: false, report: undefined }
    const report = bucket.unreported
    bucket.unreported = 0
    bucket.reportedAt = now
    return { allowed: false, report }
  }

  /**
   * Drops up to two of the least recently seen buckets that have filled up again: amortized, so a
   * take costs O(1) and idle addresses still leave the map as new ones arrive. A dropped bucket's
   * unlogged refusals are not reported: its flood has been over for a second or more.
   */
  private evictIdle(now: number): void {
    for (let checked = 0; checked < 2; checked++) {
      const oldest = this.buckets.entries().next()
      if (oldest.done === true) return
      const [address, bucket] = oldest.value
      if (bucket.tokens + (now - bucket.at) * this.perMs < this.perSecond) return
      this.buckets.delete(address)
    }
  }
}

/** The address part of a `host:port` remote (IPv6 included); `undefined` when it has no port. */
export const addressOf = (remote: string): string | undefined => {
  const colon = remote.lastIndexOf(":")
  return colon <= 0 ? undefined : remote.slice(0, colon)
}
