/**
 * Large uploads are read at a lower priority than everything else.
 *
 * All connections in the middle of a large packet share one byte rate, a token bucket refilled
 * every `PERIOD_MS`. The rate follows the event loop's lag, as TCP follows loss: it grows while
 * the loop keeps up and halves as soon as the loop lags (every client then waits that long for its
 * packets to be read). A reader over the budget waits its turn in FIFO order; its sender is held
 * back by TCP, and the CPU and memory the upload would take go to the clients that are waiting.
 * Measured on `npm run fuzz -- --flood` (50 connections streaming 16 MB packets): an unpaced
 * flood takes the whole machine, and the canary's p99 is set by the flood, not by the broker.
 *
 * The lag is sampled only while large packets are arriving, so an idle or ordinary broker pays
 * nothing; the rate never falls below `MIN_RATE`, so every upload progresses.
 */
import { Effect } from "effect"

/** How often the lag is sampled and the bucket refilled. */
const PERIOD_MS = 5
/** Lag above which the rate halves. */
const LAG_HIGH_MS = 2
/** Bytes per second: the floor (every upload progresses), the start and the ceiling. */
export const MIN_RATE = 16 * 1024 * 1024
const START_RATE = 64 * 1024 * 1024
const MAX_RATE = 4 * 1024 * 1024 * 1024
/** Growth per calm period: doubles in about 70 ms. */
const GROWTH = 1.05
/** What a released reader is assumed to read next (one socket read), charged when it is let go. */
const READ_ESTIMATE = 64 * 1024
/** Sampling stops after this long without a large upload asking. */
const IDLE_MS = 1000

/** The rate rule, pure: halve when the loop lagged over the last period, else grow. */
export const nextRate = (rate: number, lagMs: number): number =>
  lagMs > LAG_HIGH_MS ? Math.max(MIN_RATE, rate / 2) : Math.min(MAX_RATE, rate * GROWTH)

/** One connection's handle on the shared budget. */
export interface PacedReader {
  /** After a read of `bytes` into a large packet: waits until the shared budget allows another. */
  readonly pace: (bytes: number) => Effect.Effect<void>
}

/** The shared budget of all large uploads, and the lag that sets it. */
export class UploadPacer {
  private rateBytes = START_RATE
  private tokens = 0
  private lagMs = 0
  private last = 0
  private lastAsked = 0
  private timer: ReturnType<typeof setInterval> | undefined = undefined
  private readonly waiting: Array<() => void> = []

  /** The event loop's lag at the last sample, in ms (0 while not sampling). */
  get lag(): number {
    return this.lagMs
  }

  /** The large-upload rate now, in bytes per second. */
  get rate(): number {
    return this.rateBytes
  }

  /** A handle for one connection: remembers what it was charged in advance when released. */
  reader(): PacedReader {
    let prepaid = 0
    return {
      pace: (bytes) =>
        Effect.suspend(() => {
          this.lastAsked = performance.now()
          this.sampling()
          this.tokens -= Math.max(0, bytes - prepaid)
          prepaid = 0
          if (this.tokens >= 0 && this.waiting.length === 0) return Effect.void
          return Effect.callback<void>((resume) => {
            const release = () => {
              prepaid = READ_ESTIMATE
              resume(Effect.void)
            }
            this.waiting.push(release)
            return Effect.sync(() => {
              const at = this.waiting.indexOf(release)
              if (at >= 0) this.waiting.splice(at, 1)
            })
          })
        })
    }
  }

  private tick(): void {
    const now = performance.now()
    this.lagMs = Math.max(0, now - this.last - PERIOD_MS)
    this.last = now
    this.rateBytes = nextRate(this.rateBytes, this.lagMs)
    const refill = (this.rateBytes * PERIOD_MS) / 1000
    this.tokens = Math.min(refill, this.tokens + refill)
    while (this.waiting.length > 0 && this.tokens >= 0) {
      this.tokens -= READ_ESTIMATE
      this.waiting.shift()!()
    }
    if (now - this.lastAsked > IDLE_MS && this.waiting.length === 0) {
      clearInterval(this.timer)
      this.timer = undefined
      this.lagMs = 0
    }
  }

  private sampling(): void {
    if (this.timer !== undefined) return
    this.last = performance.now()
    this.timer = setInterval(() => this.tick(), PERIOD_MS)
    this.timer.unref()
  }
}
