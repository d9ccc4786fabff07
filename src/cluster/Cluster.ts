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
import type { Subscription } from "../session/SessionState.ts"
import type { Forwarded } from "./Forwarded.ts"

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
  /**
   * Starts serving the cluster with `host`: delivering what peers send to this node (one message
   * after the other, in their order), handing clients over when claimed, adopting the sessions of
   * nodes that died or stopped.
   */
  readonly serve: (host: Host) => Effect.Effect<void, never, Scope.Scope>
  /**
   * The first node of a cluster restored every stored session into its router: it adopts what the
   * nodes of before left (their undelivered messages), then owns every one of `clientIds`.
   */
  readonly restored: (clientIds: ReadonlyArray<string>) => Effect.Effect<void>
  /**
   * Makes this node the owner of `clientId` (the node its connection, and the subscriptions of
   * its session, live on). The node that owned it before, if alive, first delivers what was sent
   * to it before the claim, then ends the connection there (a takeover), drops the subscriptions
   * and hands the client over; a dead one's sessions and undelivered messages are adopted by a
   * live node first, which then hands it over. At once when this node or nobody owned it; after
   * a timeout, taken anyway, when the owner is alive but does not answer.
   */
  readonly claim: (clientId: string) => Effect.Effect<void>
  /**
   * The claimed `clientId`'s subscriptions are in this node's router now: the node it was taken
   * from stops sending what matches them here (until then, what it still gets for the client is
   * sent on, so nothing published during the move is lost).
   */
  readonly settled: (clientId: string) => Effect.Effect<void>
  /** Whether this node owns `clientId` now: a CONNECT on another node may have claimed it since. */
  readonly owns: (clientId: string) => Effect.Effect<boolean>
  /** Gives `clientId` up if this node owns it: its session ended with its connection. */
  readonly release: (clientId: string) => Effect.Effect<void>
}

/** What a node's broker does for the cluster. */
export interface Host {
  /** Delivers a message a peer sent: to this node's matching subscribers (only those in `only` when given). */
  readonly deliver: (forwarded: Forwarded, only: ReadonlySet<string> | undefined) => Effect.Effect<void, unknown>
  /** Resolves once every session change made so far is durable: asked once per read of the stream, before its entries go. */
  readonly durable: Effect.Effect<void>
  /**
   * Another node claimed `clientId`: end its connection here and drop its subscriptions, giving
   * them to `beforeDrop` first (not called if a newer CONNECT here took the client back).
   */
  readonly letGo: (clientId: string, beforeDrop: (subscriptions: ReadonlyMap<string, Subscription>) => void) => Effect.Effect<void>
  /** Delivers `message`, already made for the client (QoS, RETAIN, identifiers), to `clientId`'s session here. */
  readonly deliverTo: (clientId: string, message: Message) => Effect.Effect<void, unknown>
  /** This node adopted `clientIds` from a dead node: route their stored sessions here (offline). */
  readonly adopt: (clientIds: ReadonlyArray<string>) => Effect.Effect<void>
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
