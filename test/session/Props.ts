/**
 * Run settings for the property tests, from the environment so that a long run needs no code
 * change: `PROPS_RUNS` (runs per property, default 200), `PROPS_SEED` and `PROPS_PATH` (replay a
 * reported failure), `PROPS_VERBOSE=1` (fast-check prints every step of the shrink).
 * `test/session/run-props.ts` sets them from command-line flags.
 */
import * as fc from "fast-check"

const positive = (value: string | undefined): number | undefined => {
  const n = Number(value)
  return value !== undefined && value !== "" && Number.isFinite(n) && n > 0 ? n : undefined
}

/** Runs per property (before scaling). */
export const RUNS = Math.floor(positive(process.env["PROPS_RUNS"]) ?? 200)

/** fast-check parameters; `scale` adjusts the run count of a heavier or lighter property. */
export const params = <T>(scale = 1): fc.Parameters<T> => {
  const p: { numRuns: number; seed?: number; path?: string; verbose?: fc.VerbosityLevel } = {
    numRuns: Math.max(1, Math.ceil(RUNS * scale))
  }
  const seed = process.env["PROPS_SEED"]
  if (seed !== undefined && seed !== "") p.seed = Number(seed)
  const path = process.env["PROPS_PATH"]
  if (path !== undefined && path !== "") p.path = path
  if (process.env["PROPS_VERBOSE"]) p.verbose = fc.VerbosityLevel.VeryVerbose
  return p
}

/** A vitest timeout that grows with the run count (generous: a long run must not time out). */
export const timeout = (scale = 1): number => Math.max(60_000, Math.ceil(RUNS * scale) * 200)
