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

/** Who a registry entry closes for a takeover: its connection. */
export interface TakeOverTarget {
  /** Closes the connection for a takeover and waits until it has ended. */
  takeOver(): Effect.Effect<void>
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
  /** The connection a takeover closes. */
  readonly connection: TakeOverTarget
}

/**
 * A registry entry: one object with its methods on the prototype, as every connected client,
 * idle or not, has one (issue 16: memory per idle connection).
 */
class Live implements LiveConnection, FlowControl.Qos0Target {
  readonly clientId: string
  readonly protocolVersion: number
  readonly maximumPacketSize: number | undefined
  private readonly core: Core
  private readonly outbox: Outbox
  private readonly clock: Clock.Clock
  private readonly session: { readonly username: string | undefined }
  private readonly aliasFor: (topic: string) => Codec.PublishOptions | undefined
  private readonly connection: TakeOverTarget

  constructor(options: LiveOptions) {
    this.clientId = options.clientId
    this.protocolVersion = options.version
    this.maximumPacketSize = options.maximumPacketSize
    this.core = options.core
    this.outbox = options.outbox
    this.clock = options.clock
    this.session = options.session
    this.aliasFor = topicAliases(options.topicAliasMaximum)
    this.connection = options.connection
    FlowControl.configure(options.core.config, options.outbox, this)
  }

  get username(): string | undefined {
    return this.session.username
  }

  get takeOver(): Effect.Effect<void> {
    return this.connection.takeOver()
  }

  private publishOptions(message: Message): Codec.PublishOptions | undefined {
    if (this.protocolVersion !== 5) return undefined
    const alias = this.aliasFor(message.topic)
    return message.expiresAt === undefined ? alias : { ...alias, now: this.clock.currentTimeMillisUnsafe() }
  }

  send(outgoing: ReadonlyArray<Outgoing>): void {
    const version = this.protocolVersion
    for (const out of outgoing) {
      if (out._tag === "Publish") this.core.stats.countPublishSent(out.message.payload.length)
      this.outbox.send(Codec.encodeOutgoing(out, version, out._tag === "Publish" ? this.publishOptions(out.message) : undefined))
    }
  }

  // QoS 0 goes straight to the outbox; a congested one holds the publisher back (FlowControl)
  sendQos0(message: Message): Outbox | undefined {
    return FlowControl.sendQos0(this.core.registry.flow, this.outbox, this, message)
  }

  /** Called once per QoS 0 message actually sent. */
  encodeQos0(message: Message): Uint8Array {
    this.core.stats.countPublishSent(message.payload.length)
    return Codec.encodePublish(message, undefined, false, this.protocolVersion, this.publishOptions(message))
  }

  outboxBytes(): number {
    return this.outbox.pendingBytes()
  }
}

/** A registry entry sending through `outbox`. */
export const make = (options: LiveOptions): LiveConnection => new Live(options)
