/**
 * The young generation's size for the broker process, which V8 only reads from the command line.
 *
 * Why: V8 grows its semi-spaces (the young generation) to their maximum under a burst — 5,000
 * clients connecting, a churn round — and keeps them committed, and by default that maximum is
 * 16 MB per semi-space. The connections' objects that survive their first scavenges are copied
 * through them, so RSS per idle connection and after churn was mostly young generation, not live
 * heap (bench/README.md "Footprint": figures for each size). V8 reads the size once, when the
 * heap is created, so `v8.setFlagsFromString` cannot set it (GcTuning.ts sets what it can):
 * the process re-executes itself once with the flags, before the broker is loaded.
 *
 * `process.execve` replaces the process image, so the broker keeps its pid (a supervisor, tini,
 * systemd see one process) and no second process stays resident. Skipped, and the broker runs as
 * it is, when the operator chose a size (`--max-semi-space-size` / `--min-semi-space-size` on the
 * command line or in NODE_OPTIONS: theirs wins; `--max-semi-space-size=0` is V8's default), when
 * this process is already the re-executed one (an environment guard, against any loop), when
 * there is no script to run again (`node -e`), and where Node has no `execve` (Windows).
 * `--workers N` forks with `process.execArgv`, so the workers get the flags without re-executing.
 * An application that embeds the broker as a Layer runs in its own process: it should start Node
 * with `YOUNG_GENERATION_FLAGS` itself (README "Memory").
 */
import process from "node:process"

/** The young-generation size the broker runs with, in MB per semi-space (bench/README.md "Footprint"). */
export const SEMI_SPACE_MB = 4

/** The V8 flags that set the young generation; only the `node` command line (or NODE_OPTIONS) can give them. */
export const YOUNG_GENERATION_FLAGS: ReadonlyArray<string> = [`--max-semi-space-size=${SEMI_SPACE_MB}`]

/** Set in the re-executed process's environment (and removed from it at once): it must not re-execute again. */
export const REEXEC_GUARD = "EFFECT_MQTT_BROKER_REEXECUTED"

/** A flag that sets the young generation's size (V8 accepts `_` for `-` in its flag names). */
const sizesYoungGeneration = (arg: string): boolean => /^--(max|min)[-_]semi[-_]space[-_]size(=|$)/.test(arg)

/** What decides whether to re-execute: the process as it started. */
export interface Start {
  readonly execPath: string
  /** Node's own flags (`process.execArgv`). */
  readonly execArgv: ReadonlyArray<string>
  /** `process.argv`: the Node binary, the script, then the script's arguments. */
  readonly argv: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string | undefined>>
  /** Whether `process.execve` exists (Node ≥ 22.15 / 23.11, not on Windows). */
  readonly canExecve: boolean
}

/** The command line to re-execute with (binary first), or undefined when the process runs as it is. */
export const reexecution = (start: Start): ReadonlyArray<string> | undefined => {
  if (!start.canExecve || start.env[REEXEC_GUARD] !== undefined) return undefined
  const script = start.argv[1]
  if (script === undefined || script === "") return undefined
  const nodeOptions = (start.env["NODE_OPTIONS"] ?? "").split(/\s+/)
  if (start.execArgv.some(sizesYoungGeneration) || nodeOptions.some(sizesYoungGeneration)) return undefined
  return [start.execPath, ...YOUNG_GENERATION_FLAGS, ...start.execArgv, script, ...start.argv.slice(2)]
}

/**
 * Re-executes this process with `YOUNG_GENERATION_FLAGS` when `reexecution` says so (it does not
 * return then); otherwise removes the guard from the environment (child processes decide for
 * themselves) and returns. Call it before the broker is imported: everything loaded before is
 * loaded twice.
 */
export const ensureYoungGeneration = (): void => {
  const args = reexecution({
    execPath: process.execPath,
    execArgv: process.execArgv,
    argv: process.argv,
    env: process.env,
    canExecve: typeof process.execve === "function"
  })
  if (args === undefined) {
    delete process.env[REEXEC_GUARD]
    return
  }
  try {
    process.execve!(args[0]!, [...args], { ...process.env, [REEXEC_GUARD]: "1" })
  } catch {
    // execve refused (the binary moved, a seccomp policy): the broker runs with V8's default size
  }
}
