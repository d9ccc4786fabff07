/**
 * The client acknowledging what the broker sent: PUBACK and PUBCOMP release a packet id
 * (and let queued messages into the window), PUBREC moves a QoS 2 message on to PUBREL.
 */
import { Effect } from "effect"
import type { SessionStoreError } from "../../session/SessionStateProvider.ts"
import type { Outgoing } from "../../session/Transitions.ts"
import { type ConnectionContext, whileOwner } from "../ConnectionContext.ts"

type AckTransition = (clientId: string, packetId: number) => Effect.Effect<ReadonlyArray<Outgoing>, SessionStoreError>

const acknowledge = (context: ConnectionContext, packetId: number | undefined, transition: AckTransition) =>
  Effect.asVoid(
    whileOwner(context, (live) =>
      Effect.map(transition(context.session.clientId, packetId ?? 0), (outgoing) => {
        if (outgoing.length > 0) live.send(outgoing)
      }))
  )

/** PUBACK for a QoS 1 delivery. */
export const handlePuback = (context: ConnectionContext, packetId: number | undefined) =>
  acknowledge(context, packetId, context.core.sessions.puback)

/** PUBREC for a QoS 2 delivery. */
export const handlePubrec = (context: ConnectionContext, packetId: number | undefined) =>
  acknowledge(context, packetId, context.core.sessions.pubrec)

/** PUBCOMP for a QoS 2 delivery. */
export const handlePubcomp = (context: ConnectionContext, packetId: number | undefined) =>
  acknowledge(context, packetId, context.core.sessions.pubcomp)
