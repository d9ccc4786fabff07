/**
 * The client acknowledging what the broker sent: PUBACK and PUBCOMP release a packet id
 * (and let queued messages into the window), PUBREC moves a QoS 2 message on to PUBREL.
 *
 * Over the memory provider, with the client's lock free, an acknowledgement is handled at once
 * as a synchronous section (see `KeyedLock.isFree`): no Effect is built for it.
 */
import { Effect } from "effect"
import type { SessionStoreError } from "../../session/SessionStateProvider.ts"
import type { SyncSessions } from "../../session/Sessions.ts"
import type { Outgoing } from "../../session/Transitions.ts"
import { type ConnectionContext, whileOwner } from "../ConnectionContext.ts"

type AckTransition = (clientId: string, packetId: number) => Effect.Effect<ReadonlyArray<Outgoing>, SessionStoreError>
type SyncAckTransition = (sync: SyncSessions, clientId: string, packetId: number) => ReadonlyArray<Outgoing>

const acknowledge = (
  context: ConnectionContext,
  packetId: number | undefined,
  transition: AckTransition,
  now: SyncAckTransition
): Effect.Effect<void, SessionStoreError> => {
  const { core, session } = context
  const sync = core.sessions.sync
  if (sync !== undefined && core.locks.isFree(session.clientId)) {
    // as `whileOwner`: a late packet of a connection taken over changes nothing
    const live = session.live
    if (live !== undefined && core.registry.get(session.clientId) === live) {
      const outgoing = now(sync, session.clientId, packetId ?? 0)
      if (outgoing.length > 0) live.send(outgoing)
    }
    return Effect.void
  }
  return Effect.asVoid(
    whileOwner(context, (live) =>
      Effect.map(transition(session.clientId, packetId ?? 0), (outgoing) => {
        if (outgoing.length > 0) live.send(outgoing)
      }))
  )
}

const pubackNow: SyncAckTransition = (sync, clientId, packetId) => sync.puback(clientId, packetId)
const pubrecNow: SyncAckTransition = (sync, clientId, packetId) => sync.pubrec(clientId, packetId)
const pubcompNow: SyncAckTransition = (sync, clientId, packetId) => sync.pubcomp(clientId, packetId)

/** PUBACK for a QoS 1 delivery. */
export const handlePuback = (context: ConnectionContext, packetId: number | undefined) =>
  acknowledge(context, packetId, context.core.sessions.puback, pubackNow)

/** PUBREC for a QoS 2 delivery. */
export const handlePubrec = (context: ConnectionContext, packetId: number | undefined) =>
  acknowledge(context, packetId, context.core.sessions.pubrec, pubrecNow)

/** PUBCOMP for a QoS 2 delivery. */
export const handlePubcomp = (context: ConnectionContext, packetId: number | undefined) =>
  acknowledge(context, packetId, context.core.sessions.pubcomp, pubcompNow)
