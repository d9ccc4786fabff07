/**
 * Time for offline sessions: MQTT 5 session expiry (and 3.1.1 persistent sessions given a
 * finite expiry) and delayed wills. Offline sessions with a deadline are indexed here; one
 * fiber wakes every interval (on Effect's Clock, so TestClock drives it in tests), applies
 * `Sessions.expire` to those that are due, removes ended sessions from the router and
 * publishes the wills that fell due.
 */
import { Clock, Effect, Option, Schedule } from "effect"
import type { Router } from "../routing/Router.ts"
import type { Message } from "../session/Message.ts"
import { nextDeadline } from "../session/SessionState.ts"
import type { SessionStoreError } from "../session/SessionStateProvider.ts"
import type { Sessions } from "../session/Sessions.ts"
import type { ConnectionRegistry } from "./ConnectionRegistry.ts"
import type { KeyedLock } from "./KeyedLock.ts"

/**
 * What ending a session touches: the broker's parts, and how a will that fell due is published
 * (given by the broker, so this module does not depend on delivery).
 */
export interface ExpiryContext {
  readonly locks: KeyedLock
  readonly registry: ConnectionRegistry
  readonly sessions: Sessions["Service"]
  readonly router: Router
  readonly publishWill: (will: Message, clientId: string) => Effect.Effect<void, SessionStoreError>
}

/** Offline sessions by client id → when something is next due for them (epoch ms). */
export class SessionExpiry {
  private readonly due = new Map<string, number>()

  /** Watches a session until `at` (or stops watching it if nothing is due). */
  schedule(clientId: string, at: number | undefined): void {
    if (at === undefined) this.due.delete(clientId)
    else this.due.set(clientId, at)
  }

  /** The client came back: nothing is due for a live session. */
  cancel(clientId: string): void {
    this.due.delete(clientId)
  }

  get size(): number {
    return this.due.size
  }

  /** Applies what is due at `now` to one session. */
  private expireOne(core: ExpiryContext, clientId: string, now: number) {
    const expiry = this
    return Effect.gen(function*() {
      const will = yield* core.locks.withLock(
        clientId,
        Effect.gen(function*() {
          if (core.registry.get(clientId) !== undefined) return undefined
          const stored = yield* core.sessions.get(clientId)
          const ended = yield* core.sessions.expire(clientId, now)
          if (ended.state === undefined) {
            if (Option.isSome(stored)) core.router.subscriptions.removeClient(clientId, stored.value.subscriptions.keys())
            expiry.cancel(clientId)
            core.registry.forgetUsername(clientId)
            yield* Effect.logInfo("session expired").pipe(Effect.annotateLogs({ clientId }))
          } else {
            expiry.schedule(clientId, nextDeadline(ended.state))
          }
          return ended.will
        })
      )
      if (will !== undefined) yield* core.publishWill(will, clientId)
    })
  }

  /** Applies everything due at the current time. */
  sweep(core: ExpiryContext) {
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const due: Array<string> = []
      for (const [clientId, at] of this.due) if (at <= now) due.push(clientId)
      return Effect.forEach(due, (clientId) => this.expireOne(core, clientId, now), { discard: true })
    })
  }

  /** Sweeps every `intervalMs` until interrupted (run it in the broker's scope). */
  run(core: ExpiryContext, intervalMs: number) {
    return Effect.asVoid(
      Effect.repeat(
        this.sweep(core).pipe(Effect.catchCause((cause) => Effect.logError("session expiry sweep failed", cause))),
        Schedule.spaced(intervalMs)
      )
    )
  }
}
