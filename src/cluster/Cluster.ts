/**
 * Several broker processes acting as one (issue #15): the `Cluster` service a broker joins at
 * start. `single` (the default Layer) is one broker on its own: joining returns `undefined`, and
 * the message path checks one field and does nothing more. `ClusterRedis.layer` links the
 * brokers sharing a Redis server: each forwards a published message to the nodes whose
 * subscription filters match it, and they keep one set of retained messages.
 *
 * @module
 */
import { Context, Effect, Layer, Schema, type Scope } from "effect"
import type { Router } from "../routing/Router.ts"
import type { SharedGroup } from "../routing/SubscriptionIndex.ts"
import type { Message } from "../session/Message.ts"
import type { Forwarded } from "./Envelope.ts"

/** Why the cluster link failed: which step (`connect`, `join`) and the cause (Redis' error). */
export class ClusterError extends Schema.TaggedError<ClusterError>()("ClusterError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    const cause = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `cluster: ${this.operation} failed: ${cause}`
  }
}

/** This broker as a member of a cluster. */
export interface ClusterNode {
  /** This node's id (random per process): its channel and filter set in Redis are named after it. */
  readonly nodeId: string
  /** Live peers when this node joined: with none, this node is the first and restores stored sessions. */
  readonly peersAtStart: number
  /**
   * Sends `message` to the peers with a matching filter, then says which of the matching
   * shared subscriptions (`localShared`) this node serves itself (by `SharedGroup.key`);
   * `undefined`: all of them (a `$SYS` message, which stays on its node). Resolves once Redis
   * has taken the message for QoS 1 and 2, at once for QoS 0.
   */
  readonly forward: (
    message: Message,
    publisherId: string | undefined,
    localShared: ReadonlyArray<SharedGroup>
  ) => Effect.Effect<ReadonlySet<string> | undefined>
  /** Starts delivering what peers forward to this node, one message after the other (in their order). */
  readonly listen: (deliver: (forwarded: Forwarded) => Effect.Effect<void, unknown>) => Effect.Effect<void, never, Scope.Scope>
  /**
   * Makes this node the owner of `clientId` (the node its connection, and the subscriptions of
   * its session, live on). The node that owned it before, if alive, ends its connection there
   * (a takeover) and drops its subscriptions; resolves once it has, or after a timeout when it
   * does not answer (it is dying). At once when this node or nobody owned it.
   */
  readonly claim: (clientId: string) => Effect.Effect<void>
  /** Whether this node owns `clientId` now: a CONNECT on another node may have claimed it since. */
  readonly owns: (clientId: string) => Effect.Effect<boolean>
  /** Gives `clientId` up if this node owns it: its session ended with its connection. */
  readonly release: (clientId: string) => Effect.Effect<void>
  /** What this node does when another claims one of its clients: end the connection, drop its subscriptions. */
  readonly onClaimed: (handler: (clientId: string) => Effect.Effect<void>) => void
}

/** Joining the other broker nodes. */
export class Cluster extends Context.Service<Cluster, {
  /**
   * Joins with this broker's `router`: its filters are published to the peers and kept up to
   * date, its retained store loaded and written through. For the scope's lifetime; `undefined`
   * when there is no cluster.
   */
  readonly join: (router: Router) => Effect.Effect<ClusterNode | undefined, ClusterError, Scope.Scope>
}>()("effect-mqtt-broker/cluster/Cluster") {}

/** One broker on its own: nothing to join. */
export const single: Cluster["Service"] = Cluster.of({ join: () => Effect.succeed(undefined) })

/** The default Layer: no cluster, no cost on the message path. */
export const layerSingle: Layer.Layer<Cluster> = Layer.succeed(Cluster, single)
