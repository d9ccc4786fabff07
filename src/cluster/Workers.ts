/**
 * `--workers N`: one broker per core on one machine. The primary process validates the
 * configuration, then forks N copies of itself with node:cluster and only supervises them; each
 * worker runs the whole broker with the same flags, environment and config file. The workers share
 * the listeners' ports: node:cluster's primary accepts each connection and hands it to the workers
 * in turn (round-robin), so one port serves them all and the balance does not depend on the
 * kernel. Sessions and messages cross between workers through Redis, which is why more than one
 * worker needs `--persistence redis`.
 *
 * Supervision, as an operator expects of a process manager:
 * - a worker that stops before it listens (a port in use, Redis unreachable) stops them all, and
 *   the primary exits non-zero: the configuration cannot run, restarting would only loop;
 * - a worker that dies later (a crash, `kill -9`) is replaced, and its clients reconnect to the
 *   others, where their sessions are waiting in Redis;
 * - SIGTERM / SIGINT stop every worker gracefully and then the primary; SIGHUP is passed on, so
 *   each worker re-reads the password and ACL files.
 */
import { Data, Effect } from "effect"
import type { Worker } from "node:cluster"
import cluster from "node:cluster"

/** A worker stopped before it listened, so the configuration cannot run. */
export class WorkerStartFailed extends Data.TaggedError("WorkerStartFailed")<{
  /** The worker's number, from 1. */
  readonly worker: number
  /** How it stopped: its exit code, or the signal that killed it. */
  readonly exit: string
}> {
  override get message(): string {
    return `worker ${this.worker} stopped before it listened (${this.exit}); the workers were stopped`
  }
}

/** The environment variable telling a worker its number (1…N), for its log lines. */
export const WORKER_ENV = "MQTT_WORKER"

/** Whether this process is a worker forked by `supervise` (which then runs the broker itself). */
export const isWorker = (): boolean => cluster.isWorker

/** What a worker sends its supervisor once the broker listens. */
const READY = "effect-mqtt-broker:ready"

/** Sent by a worker once its broker listens: from then on, its death is a crash to recover from. */
export const announceReady: Effect.Effect<void> = Effect.sync(() => {
  process.send?.(READY)
})

/** How a worker process ended, in words. */
const describeExit = (code: number | null, signal: string | null): string =>
  signal !== null ? `killed by ${signal}` : `exit code ${code ?? "unknown"}`

/**
 * Forks `count` workers and keeps them running until interrupted (then stops them all and waits
 * for them), or fails when one stops before it listened. Replacements come after `restartDelayMs`
 * so that a worker dying in a loop does not spin the machine.
 */
export const supervise = (
  count: number,
  options: { readonly restartDelayMs?: number } = {}
): Effect.Effect<never, WorkerStartFailed> =>
  Effect.flatMap(Effect.context<never>(), (context) =>
    Effect.callback<never, WorkerStartFailed>((resume) => {
      const restartDelayMs = options.restartDelayMs ?? 1000
      const live = new Map<number, Worker>()
      const timers = new Set<ReturnType<typeof setTimeout>>()
      let stopping = false

      const fork = (index: number): void => {
        const worker = cluster.fork({ [WORKER_ENV]: String(index) })
        let ready = false
        live.set(index, worker)
        worker.on("message", (message: unknown) => {
          if (message === READY) ready = true
        })
        worker.once("exit", (code, signal) => {
          live.delete(index)
          if (stopping) return
          const how = describeExit(code, signal)
          if (!ready) {
            stopAll("SIGTERM")
            return resume(Effect.fail(new WorkerStartFailed({ worker: index, exit: how })))
          }
          Effect.runForkWith(context)(Effect.logWarning(`worker ${index} (pid ${worker.process.pid}) stopped (${how}); starting another in ${restartDelayMs} ms`))
          const timer = setTimeout(() => {
            timers.delete(timer)
            if (!stopping) fork(index)
          }, restartDelayMs)
          timers.add(timer)
        })
      }

      const stopAll = (signal: NodeJS.Signals): void => {
        stopping = true
        for (const timer of timers) clearTimeout(timer)
        for (const worker of live.values()) worker.process.kill(signal)
      }

      // SIGHUP would end the primary by default: pass it on instead
      const hangup = (): void => {
        for (const worker of live.values()) worker.process.kill("SIGHUP")
      }
      process.on("SIGHUP", hangup)
      for (let index = 1; index <= count; index++) fork(index)

      // interrupted (SIGTERM / SIGINT reach the primary as an interruption): stop the workers and
      // wait until every one has exited, each within its own shutdown grace period
      return Effect.callback<void>((done) => {
        process.off("SIGHUP", hangup)
        stopAll("SIGTERM")
        if (live.size === 0) return done(Effect.void)
        for (const worker of live.values()) {
          worker.once("exit", () => {
            if (live.size === 0) done(Effect.void)
          })
        }
      })
    }))
