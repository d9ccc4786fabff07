/**
 * Stopping always completes. `NodeRuntime.runMain` turns SIGTERM / SIGINT into an interruption
 * of the main fiber, which closes the listeners and connections; but a second signal only
 * interrupts again, and a shutdown stuck in a finalizer would hang forever. Here a first signal
 * starts a grace period after which the process exits anyway, and a second signal exits at once
 * (128 + the signal number, as a shell reports a process killed by it).
 *
 * "Second" means a deliberate one: the same stop often arrives twice within milliseconds (Ctrl-C
 * reaches both `npm start` and the broker, and npm forwards it; systemd signals every process of
 * the unit), so a repeat within `REPEAT_MS` of the first counts as that first one.
 */

/** How long a shutdown may take after the first signal before the process exits regardless. */
export const GRACE_MS = 5_000

/** Repeats closer than this to the first signal are the same request delivered twice. */
export const REPEAT_MS = 1_000

/** The signals that stop the broker, with the exit code of a forced exit on each. */
export const signals = { SIGINT: 130, SIGTERM: 143 } as const

/** What `install` needs from the process: injected so tests can drive it without signalling themselves. */
export interface Host {
  readonly on: (signal: keyof typeof signals, listener: () => void) => void
  readonly exit: (code: number) => void
  readonly writeLine: (line: string) => void
  readonly now: () => number
}

/** The real process. */
export const nodeHost: Host = {
  on: (signal, listener) => void process.on(signal, listener),
  exit: (code) => process.exit(code),
  writeLine: (line) => void process.stderr.write(`${line}\n`),
  now: () => performance.now()
}

/** Installs the second-signal exit and the grace period; `program` names the process in its lines. */
export const install = (options: { readonly program: string; readonly graceMs?: number; readonly host?: Host }): void => {
  const host = options.host ?? nodeHost
  const graceMs = options.graceMs ?? GRACE_MS
  let firstAt: number | undefined
  for (const signal of Object.keys(signals) as Array<keyof typeof signals>) {
    host.on(signal, () => {
      const code = signals[signal]
      if (firstAt !== undefined) {
        if (host.now() - firstAt < REPEAT_MS) return
        host.writeLine(`${options.program}: ${signal} while stopping: exiting without finishing shutdown`)
        return host.exit(code)
      }
      firstAt = host.now()
      // unref: a shutdown that finishes in time must not be kept waiting for this timer
      setTimeout(() => {
        host.writeLine(`${options.program}: shutdown did not finish within ${graceMs} ms: exiting`)
        host.exit(code)
      }, graceMs).unref()
    })
  }
}
