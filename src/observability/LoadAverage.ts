/**
 * Mosquitto's `$SYS/broker/load/...` figures: a per-minute rate smoothed exponentially over 1, 5
 * and 15 minutes, as `sys_tree.c` computes them. Each update takes what was counted since the
 * previous one: `rate = count × 60 / elapsed`, `load' = rate + e^(−elapsed / window) × (load − rate)`.
 * Pure: no clock, the elapsed time is an argument.
 */

/** The three windows, in seconds, as the topic suffixes name them. */
export const WINDOWS = [["1min", 60], ["5min", 300], ["15min", 900]] as const

/** One figure's three loads, by window name. */
export type Loads = { readonly [K in (typeof WINDOWS)[number][0]]: number }

/** Every load starts at 0, as Mosquitto's do. */
export const zero: Loads = { "1min": 0, "5min": 0, "15min": 0 }

/** One load after `count` events in `elapsedSeconds` (no time elapsed: unchanged). */
export const next = (current: number, count: number, elapsedSeconds: number, windowSeconds: number): number => {
  if (!(elapsedSeconds > 0)) return current
  const perMinute = (count * 60) / elapsedSeconds
  return perMinute + Math.exp(-elapsedSeconds / windowSeconds) * (current - perMinute)
}

/** All three loads of one figure after `count` events in `elapsedSeconds`. */
export const update = (loads: Loads, count: number, elapsedSeconds: number): Loads => ({
  "1min": next(loads["1min"], count, elapsedSeconds, 60),
  "5min": next(loads["5min"], count, elapsedSeconds, 300),
  "15min": next(loads["15min"], count, elapsedSeconds, 900)
})
