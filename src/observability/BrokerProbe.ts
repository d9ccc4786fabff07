/**
 * What the observability room reads from a running broker: its `Stats`, the sizes of its live
 * structures (read when a report is made, never maintained on the message path) and the
 * session provider's answers. `Broker.make` builds one; `$SYS`, the metrics and `/ready` read it.
 */
import { Duration, Effect, Option } from "effect"
import type { SessionStateProvider } from "../session/SessionStateProvider.ts"
import type { Stats } from "./Stats.ts"

/** How long the provider may take to answer a readiness lookup. */
const READY_TIMEOUT = Duration.seconds(1)

/** A client id no client can have (MQTT strings may not hold U+0000): looking it up touches no session. */
const PROBE_CLIENT_ID = "\u0000ready"

/** The parts of a probe the broker reads itself; sessions and readiness come from the provider. */
export interface Readers {
  readonly stats: Stats
  /** When the broker started (ms since the epoch, Effect's Clock). */
  readonly startedAt: number
  readonly clientsConnected: () => number
  /** (client, filter) pairs in the subscription index. */
  readonly subscriptions: () => number
  readonly retained: () => number
  /** Bytes waiting to be written, over every connected client. */
  readonly outboxBytes: () => number
  /** QoS 0 messages dropped by the slow-consumer policy. */
  readonly dropped: () => number
  /** Whether the MQTT listeners are bound (not yet during start, no longer during shutdown). */
  readonly listening: () => boolean
}

/** A running broker as its reports see it. */
export interface BrokerProbe extends Readers {
  /** Sessions in the provider when `countSessions` last asked (0 before). */
  readonly sessions: () => number
  /** Asks the provider how many sessions it holds; keeps the last answer when it fails. */
  readonly countSessions: Effect.Effect<void>
  /** Whether the provider answers a lookup within a second. */
  readonly providerAnswers: Effect.Effect<boolean>
}

/** A probe over `readers` and the session provider. */
export const make = (readers: Readers, provider: SessionStateProvider["Service"]): BrokerProbe => {
  let sessions = 0
  return {
    ...readers,
    sessions: () => sessions,
    countSessions: provider.clientIds.pipe(
      Effect.map((ids) => {
        sessions = ids.length
      }),
      Effect.ignore
    ),
    providerAnswers: provider.get(PROBE_CLIENT_ID).pipe(
      Effect.timeoutOption(READY_TIMEOUT),
      Effect.map(Option.isSome),
      Effect.orElseSucceed(() => false)
    )
  }
}
