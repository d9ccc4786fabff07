/**
 * Large uploads are read at a lower priority than everything else. While the event loop lags
 * (every client then waits that long for its packets to be read), a connection in the middle of a
 * large packet pauses briefly before it reads on; its sender is held back by TCP, and the CPU and
 * memory the upload would take go to the clients that are waiting. The lag is sampled only while
 * large packets are arriving, so an idle or ordinary broker pays nothing.
 */
import { Effect } from "effect"

/** How often the lag is sampled, and how long a paced reader pauses each time. */
const PERIOD_MS = 10
/** Lag above which large uploads pause. */
const LAG_THRESHOLD_MS = 5
/** A reader pauses at most this many times per chunk, so an upload always progresses. */
const MAX_PAUSES = 20
/** Sampling stops after this long without a large upload asking. */
const IDLE_MS = 1000

/** The event loop's lag, and the pause large uploads take while it is high. */
export class UploadPacer {
  private lagMs = 0
  private last = 0
  private lastAsked = 0
  private timer: ReturnType<typeof setInterval> | undefined = undefined

  /** The event loop's lag at the last sample, in ms (0 while not sampling). */
  get lag(): number {
    return this.lagMs
  }

  /** Before a reader in the middle of a large packet reads on: pauses while the loop lags. */
  readonly pace: Effect.Effect<void> = Effect.suspend(() => {
    this.lastAsked = performance.now()
    this.sampling()
    return this.pause(MAX_PAUSES)
  })

  private pause(left: number): Effect.Effect<void> {
    return left > 0 && this.lagMs > LAG_THRESHOLD_MS
      ? Effect.flatMap(Effect.sleep(PERIOD_MS), () => this.pause(left - 1))
      : Effect.void
  }

  private sampling(): void {
    if (this.timer !== undefined) return
    this.last = performance.now()
    this.timer = setInterval(() => {
      const now = performance.now()
      this.lagMs = Math.max(0, now - this.last - PERIOD_MS)
      this.last = now
      if (now - this.lastAsked > IDLE_MS) {
        clearInterval(this.timer)
        this.timer = undefined
        this.lagMs = 0
      }
    }, PERIOD_MS)
    this.timer.unref()
  }
}
