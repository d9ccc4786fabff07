/**
 * What a provider that commits changes in groups (one transaction per turn of the event loop, as
 * `SqliteSessionStateProvider`) offers beyond `SessionStateProvider`: an update applied at once
 * whose caller does not wait for its commit, and a barrier that waits for every change so far.
 *
 * `Sessions` uses it for changes that nothing acknowledges on their own (a QoS 0/1 message queued or
 * sent to a session, a PUBACK or PUBCOMP releasing one), so a client's lock is not held across a
 * commit and many deliveries share one; the PUBACK or PUBREC of the PUBLISH that caused them is
 * sent by `afterCommit`, so the connection goes on reading PUBLISHes meanwhile and one commit
 * covers many of them. Without this service every change is awaited in `modify` itself (the memory
 * provider has nothing to wait for).
 */
import { Context, type Effect } from "effect"
import type { SessionStoreError, SessionUpdate } from "../SessionStateProvider.ts"

/** Deferred commits of a group-committing provider. */
export class GroupCommit extends Context.Service<GroupCommit, {
  /** As `SessionStateProvider.modify`, atomic and visible at once, but returning before its commit. */
  readonly modifyDeferred: <A>(clientId: string, update: SessionUpdate<A>) => Effect.Effect<A, SessionStoreError>
  /** Completes once every change made so far has committed (at once when nothing is pending). */
  readonly committed: Effect.Effect<void, SessionStoreError>
  /**
   * Runs `f` once every change made so far has committed, after every `f` given before it (at once
   * when nothing is pending or waiting). If that commit fails, `f` is not run.
   */
  readonly afterCommit: (f: () => void) => void
}>()("effect-mqtt-broker/session/GroupCommit") {}
