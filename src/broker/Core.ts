/**
 * The shared state of one running broker that every connection works with. Built once by
 * `Broker.layer`; plain references, so the per-packet path does no service lookups.
 */
import type { Authenticator } from "../auth/Authenticator.ts"
import type { Authorizer } from "../auth/Authorizer.ts"
import type { ConnectRate } from "../auth/ConnectRate.ts"
import type { ClusterNode } from "../cluster/Cluster.ts"
import type { Admit } from "../transport/Admission.ts"
import type { BrokerConfig } from "../config/BrokerConfig.ts"
import type { Stats } from "../observability/Stats.ts"
import type { Router } from "../routing/Router.ts"
import type { Sessions } from "../session/Sessions.ts"
import type { ConnectionRegistry } from "./ConnectionRegistry.ts"
import type { KeyedLock } from "./KeyedLock.ts"
import type { ReceiveBudget } from "./ReceiveBudget.ts"
import type { UploadPacer } from "./UploadPacer.ts"
import type { SessionExpiry } from "./SessionExpiry.ts"
import type { Watchdog } from "./Watchdog.ts"

/** A running broker's internals. */
export interface Core {
  readonly config: BrokerConfig
  readonly sessions: Sessions["Service"]
  readonly router: Router
  readonly registry: ConnectionRegistry
  readonly locks: KeyedLock
  readonly watchdog: Watchdog
  readonly expiry: SessionExpiry
  /** Bytes of partly received large packets across all connections. */
  readonly receiving: ReceiveBudget
  /** Lower priority for large uploads while the event loop lags. */
  readonly pacer: UploadPacer
  /** Who may connect: asked once per CONNECT (allow-all unless an `Authenticator` is provided). */
  readonly authenticator: Authenticator["Service"]
  /** Which topics a client may use; `undefined` is "allow all" and skips the check on the message path. */
  readonly authorizer: Authorizer["Service"] | undefined
  /** CONNECTs per second per source address (`maxConnectsPerSecond`); `undefined`: no limit, no check. */
  readonly connectRate: ConnectRate | undefined
  /** Failed authentications per second per source address (`maxAuthFailuresPerSecond`); `undefined`: no limit. */
  readonly authFailures: ConnectRate | undefined
  /** Whether a new connection from an address is served (`authFailures`' shut-out); `undefined`: all are. */
  readonly admit: Admit | undefined
  /** What the broker counts for `$SYS` and the metrics: plain increments on the message path. */
  readonly stats: Stats
  /** This broker as a node of a cluster (`--cluster`); `undefined`: on its own, and the message path skips it. */
  readonly cluster: ClusterNode | undefined
}
