/**
 * A histogram counted with plain numbers, so observing a value on the message path costs a few
 * comparisons and no service lookup. Effect's exporters read it through `state`, which has the
 * shape of `Metric.HistogramState` (cumulative buckets), when they snapshot.
 */
import type { Metric } from "effect"

/** Fixed bucket bounds (ascending, finite), counts per bucket, count, sum, min and max. */
export class Histogram {
  readonly #bounds: ReadonlyArray<number>
  // one more than the bounds: the last counts values above every bound (+Inf)
  readonly #counts: Float64Array
  #count = 0
  #sum = 0
  #min = Number.MAX_VALUE
  #max = -Number.MAX_VALUE

  /** `bounds`: the buckets' upper bounds (inclusive), sorted ascending. */
  constructor(bounds: ReadonlyArray<number>) {
    this.#bounds = [...bounds].sort((a, b) => a - b).filter((bound) => Number.isFinite(bound))
    this.#counts = new Float64Array(this.#bounds.length + 1)
  }

  /** Records one value. */
  observe(value: number): void {
    const bounds = this.#bounds
    let i = 0
    // a dozen bounds: a linear scan from the small end is as fast as a binary search and most values are small
    while (i < bounds.length && value > bounds[i]!) i++
    this.#counts[i]!++
    this.#count++
    this.#sum += value
    if (value < this.#min) this.#min = value
    if (value > this.#max) this.#max = value
  }

  /** Number of values recorded. */
  get count(): number {
    return this.#count
  }

  /** The state as Effect's metrics carry it: `[bound, values ≤ bound]` per finite bound. */
  state(): Metric.HistogramState {
    const buckets: Array<[number, number]> = []
    let cumulative = 0
    for (let i = 0; i < this.#bounds.length; i++) {
      cumulative += this.#counts[i]!
      buckets.push([this.#bounds[i]!, cumulative])
    }
    return { buckets, count: this.#count, min: this.#min, max: this.#max, sum: this.#sum }
  }
}
