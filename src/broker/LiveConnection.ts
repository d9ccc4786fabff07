/**
 * A connection's entry in the registry once CONNECT is accepted: how deliveries reach the client
 * (encoded for its protocol version, with the broker's outbound topic aliases and the remaining
 * message expiry by Effect's `Clock`), and how a takeover closes it.
 */
import type { Clock, Effect } from "effect"
import * as Codec from "../protocol/Codec.ts"
import type { Message } from "../session/Message.ts"
import type { Outgoing } from "../session/Transitions.ts"
import type { LiveConnection } from "./ConnectionRegistry.ts"
import type { Core } from "./Core.ts"
import * as FlowControl from "./FlowControl.ts"
import type { Outbox } from "./Outbox.ts"

const NO_ALIAS = (_topic: string): Codec.PublishOptions | undefined => undefined

/**
 * The broker's topic aliases towards one MQTT 5 client (connection-local, as the spec says):
 * the first PUBLISH on a topic carries the topic and a new alias, later ones only the alias.
 * A client that takes none costs no table.
 */
export const topicAliases = (maximum: number): (topic: string) => Codec.PublishOptions | undefined => {
  if (maximum === 0) return NO_ALIAS
  const aliases = new Map<string, number>()
  return (topic) => {
    const known = aliases.get(topic)
    if (known !== undefined) return { topicAlias: known, aliasOnly: true }
    if (aliases.size >= maximum) return undefined
    const alias = aliases.size + 1
    aliases.set(topic, alias)
    return { topicAlias: alias }
  }
}

/** What a registry entry is made of. */
export interface LiveOptions {
  readonly core: Core
  readonly outbox: Outbox
  readonly clock: Clock.Clock
  readonly clientId: string
  readonly version: number
  /** Where the user name is read when asked: the Authenticator may settle it after the entry is built. */
  readonly session: { readonly username: string | undefined }
  /** MQTT 5: how many topic aliases the client takes from the broker (0: none). */
  readonly topicAliasMaximum: number
  /** MQTT 5: the largest packet the client takes. */
  readonly maximumPacketSize: number | undefined
  /** Closes the connection for a takeover and waits until it has ended. */
  readonly takeOver: Effect.Effect<void>
}

/** A registry entry sending through `outbox`. */
export const make = (options: LiveOptions): LiveConnection => {
  const { clientId, clock, core, outbox, session, version } = options
  const { stats } = core
  const aliasFor = topicAliases(options.topicAliasMaximum)
  const publishOptions = (message: Message): Codec.PublishOptions | undefined => {
    if (version !== 5) return undefined
    const alias = aliasFor(message.topic)
    return message.expiresAt === undefined ? alias : { ...alias, now: clock.currentTimeMillisUnsafe() }
  }
  return {
    clientId,
    get username() {
      return session.username
    },
    send: (outgoing: ReadonlyArray<Outgoing>) => {
      for (const out of outgoing) {
        if (out._tag === "Publish") stats.countPublishSent(out.message.payload.length)
        outbox.send(Codec.encodeOutgoing(out, version, out._tag === "Publish" ? publishOptions(out.message) : undefined))
      }
    },
    // QoS 0 goes straight to the outbox; a congested one holds the publisher back (FlowControl)
    sendQos0: FlowControl.qos0Sender(core.config, core.registry.flow, outbox, {
      clientId,
      protocolVersion: version,
      maximumPacketSize: options.maximumPacketSize,
      // called once per message actually sent
      encode: (message) => {
        stats.countPublishSent(message.payload.length)
        return Codec.encodePublish(message, undefined, false, version, publishOptions(message))
      }
    }),
    outboxBytes: outbox.pendingBytes,
    takeOver: options.takeOver
  }
}
