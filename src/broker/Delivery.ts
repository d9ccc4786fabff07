/**
 * Routing a published message to every matching session. One copy per client (the highest
 * granted QoS among overlapping subscriptions), at delivery QoS = min(publish, granted).
 * QoS 0 to an online client is written straight to its outbox; everything else is a session
 * transition under the client's lock, so an online client gets it now and an offline one
 * gets it queued.
 */
import { Effect } from "effect"
import { type Message, minQos, type QoS, withRetain } from "../session/Message.ts"
import type { SessionStoreError } from "../session/SessionStateProvider.ts"
import type { Core } from "./Core.ts"

/** The message at each delivery QoS, built at most once per publish. */
const variants = (message: Message): (qos: QoS) => Message => {
  const cache: Array<Message | undefined> = [undefined, undefined, undefined]
  return (qos) => (cache[qos] ??= { topic: message.topic, payload: message.payload, qos, retain: false })
}

/** Delivers one message to one client (under its lock for anything that touches the session). */
export const deliverTo = (core: Core, clientId: string, message: Message): Effect.Effect<void, SessionStoreError> =>
  core.locks.withLock(
    clientId,
    Effect.suspend(() => {
      const live = core.registry.get(clientId)
      return Effect.map(core.sessions.deliver(clientId, message, live !== undefined), (outgoing) => {
        if (live !== undefined && outgoing.length > 0) live.send(outgoing)
      })
    })
  )

/** Publishes a message from a client (or a will): retained bookkeeping, then fan-out. */
export const publish = Effect.fnUntraced(function*(core: Core, message: Message) {
  if (message.retain) core.router.retain(message)
  const matches = core.router.match(message.topic)
  if (matches.size === 0) return
  const at = variants(withRetain(message, false))
  const queueQos0 = core.sessions.limits.queueQos0
  for (const [clientId, granted] of matches) {
    const delivered = at(minQos(message.qos, granted))
    if (delivered.qos === 0) {
      const live = core.registry.get(clientId)
      if (live !== undefined) live.sendQos0(delivered)
      else if (queueQos0) yield* deliverTo(core, clientId, delivered)
      continue
    }
    yield* deliverTo(core, clientId, delivered)
  }
})
