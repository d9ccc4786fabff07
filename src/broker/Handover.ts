/**
 * A client moving between the nodes of a cluster. A CONNECT claims the client id in Redis
 * (`ClusterNode.claim`): the node that had it ends its connection there — a takeover, MQTT 5
 * DISCONNECT 0x8E — and stops routing to its session (`letGo`), before the claiming node touches
 * the session. The claiming node then puts the session's subscriptions into its own router
 * (`settle`), since they were in the other node's. Two CONNECTs racing on two nodes both claim;
 * the one that claimed first is told to let go, and if its connection was not registered yet
 * when it was told, it finds out it no longer owns the client once it is, and lets go then: one
 * live connection per client id in the cluster.
 */
import { Effect, Option } from "effect"
import type { Subscription } from "../session/SessionState.ts"
import type { Connected } from "../session/Transitions.ts"
import type { Core } from "./Core.ts"

/**
 * Ends `clientId`'s connection on this node, if any (waiting for its teardown, which stores the
 * session's end), then drops the session's subscriptions from this node's router and stops
 * watching its expiry here: the node that claimed it has them now. `beforeDrop` is given them
 * first, under the client's lock (the cluster keeps sending on what matches them); not called
 * when a newer CONNECT here claimed the client again meanwhile.
 */
export const letGo = (
  core: Core,
  clientId: string,
  beforeDrop: (subscriptions: ReadonlyMap<string, Subscription>) => void = () => {}
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const live = core.registry.get(clientId)
    if (live !== undefined) yield* live.takeOver
    yield* core.locks.withLock(
      clientId,
      Effect.gen(function*() {
        // a connection registered meanwhile is a newer CONNECT here: it claimed the client again
        if (core.registry.get(clientId) !== undefined) return
        const stored = yield* core.sessions.get(clientId)
        core.expiry.cancel(clientId)
        if (Option.isNone(stored)) return
        beforeDrop(stored.value.subscriptions)
        core.router.subscriptions.removeClient(clientId, stored.value.subscriptions.keys())
      })
    )
    // deliveries routed here before the drop and waiting for the lock (it is first come, first
    // served) are in the session before the claimant reads it
    yield* core.locks.withLock(clientId, Effect.void)
  }).pipe(
    Effect.catch((error) => Effect.logWarning(`cluster: letting ${clientId} go to another node: ${error.message}`)),
    Effect.annotateLogs({ clientId })
  )

/**
 * After a CONNECT on this node of a cluster: the resumed session's subscriptions join this
 * node's router (adding one it has already changes nothing), and if another node claimed the
 * client meanwhile, this connection is let go as soon as its CONNECT is done.
 */
export const settle = (core: Core, clientId: string, connected: Connected): Effect.Effect<void> =>
  Effect.gen(function*() {
    const cluster = core.cluster
    if (cluster === undefined) return
    for (const [filter, subscription] of connected.state.subscriptions) core.router.subscriptions.add(clientId, filter, subscription)
    // the node it came from stops sending on what it still got for it
    yield* cluster.settled(clientId)
    if (yield* cluster.owns(clientId)) return
    yield* Effect.logInfo("cluster: another node claimed this client while it connected here; letting it go").pipe(
      Effect.annotateLogs({ clientId })
    )
    // on its own fiber: the takeover waits for this connection's teardown, which waits for this handler
    yield* Effect.forkDetach(letGo(core, clientId))
  })
