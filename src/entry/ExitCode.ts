/**
 * How the broker process ends, as an operator (systemd, Docker, a shell script) sees it: an exit
 * code from one table and, when it did not start, one line on stderr saying why. Stack traces
 * are for bugs; a port in use or a bad flag is not one (`--log-level debug` logs the details).
 */
import { Cause, Exit, Predicate } from "effect"
import type { Teardown } from "effect/Runtime"

/** The exit codes (README "Exit codes"). */
export const ExitCode = {
  /** Stopped by SIGTERM / SIGINT after a clean shutdown, or `--help` / `--version` / `--print-config`. */
  ok: 0,
  /** Could not start: a listener could not listen, the session store failed, or an unexpected error. */
  startupFailed: 1,
  /** Bad configuration: a value out of range, a missing companion flag, unreadable TLS files, an unknown flag, a bad config file. */
  badConfiguration: 2,
  /** Forced exit on a second SIGINT, or when shutdown outlived the grace period after SIGINT (128 + 2). */
  forcedAfterSigint: 130,
  /** Forced exit on a second SIGTERM, or when shutdown outlived the grace period after SIGTERM (128 + 15). */
  forcedAfterSigterm: 143
} as const

/** Prefix of every line the process writes about itself on stderr. */
export const PROGRAM = "effect-mqtt-broker"

const tagOf = (error: unknown): string | undefined => Predicate.hasProperty(error, "_tag") && Predicate.isString(error._tag) ? error._tag : undefined

const messageOf = (error: unknown): string => Predicate.isError(error) ? error.message : String(error)

/** What the main program's exit means: the exit code and the line for stderr (none when already said). */
export const outcome = (exit: Exit.Exit<unknown, unknown>): { readonly code: number; readonly line: string | undefined } => {
  if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return { code: ExitCode.ok, line: undefined }
  const error = Cause.squash(exit.cause)
  const line = (text: string) => `${PROGRAM}: ${text.replace(/\s+/g, " ").trim()}`
  switch (tagOf(error)) {
    case "ConfigError":
      return { code: ExitCode.badConfiguration, line: line(messageOf(error)) }
    // effect/cli parse errors: the presenter has written the line already (OneLinePresenter)
    case "ShowHelp":
      return { code: ExitCode.badConfiguration, line: undefined }
    case "ListenerError":
      return { code: ExitCode.startupFailed, line: line(messageOf(error)) }
    // --cluster: the node could not join (Redis refused what the session store accepted)
    case "ClusterError":
      return { code: ExitCode.startupFailed, line: line(messageOf(error)) }
    // --workers: a worker stopped before it listened (it wrote its own line before this one)
    case "WorkerStartFailed":
      return { code: ExitCode.startupFailed, line: line(messageOf(error)) }
    // `passwd` did nothing: a missing file, passwords that differ, an unknown user
    case "PasswdError":
      return { code: ExitCode.startupFailed, line: line(messageOf(error)) }
    case "SessionStoreError":
      // a provider that cannot open its store says why (and which file) in the error's cause
      return { code: ExitCode.startupFailed, line: line(`session store: ${messageOf(error) || messageOf((error as { cause?: unknown }).cause)}`) }
    default:
      return {
        code: ExitCode.startupFailed,
        // a bug, not an operator's mistake: its first line here, the rest at --log-level debug
        line: line(`unexpected failure: ${messageOf(error).split("\n")[0]} (--log-level debug shows where)`)
      }
  }
}

/** A `runMain` teardown that writes the one line and exits with the code from the table. */
export const teardown = (write: (line: string) => void): Teardown => (exit, onExit) => {
  const { code, line } = outcome(exit)
  if (line !== undefined) write(line)
  onExit(code)
}
