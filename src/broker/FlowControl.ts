/**
 * Backpressure from congested subscribers to the publishers feeding them (README "Slow
 * consumers"). A QoS 0 delivery that finds a subscriber's outbox over its high-water mark is
 * still queued (up to `maxOutboxBytes`) and holds its publisher back: once the handler of the
 * publisher's current packet has finished, the publisher's read loop waits for that outbox to
 * drain before it reads more from its socket, so TCP pushes back on the publisher instead of the
 * broker dropping messages. A stalled subscriber holds nobody back (see `Outbox`).
 */
import { Effect } from "effect"
import type { BrokerConfig } from "../config/BrokerConfig.ts"
import * as Codec from "../protocol/Codec.ts"
import { publishSize } from "../session/PacketSize.ts"
import type { Message } from "../session/Message.ts"
import type { Outbox } from "./Outbox.ts"

/** MQTT 5 DISCONNECT reason for a stalled subscriber: it exceeded its quota of buffered outbound bytes. */
const QUOTA_EXCEEDED = 0x97

/**
 * Bytes a topic alias may add to `publishSize` (which counts none): the property (3 bytes) and a
 * longer remaining-length prefix.
 */
const ALIAS_MARGIN = 4

/** Broker-wide flow-control state. */
export class FlowControl {
  /** Publisher client id → the congested outbox it waits for after its current packet. */
  readonly held = new Map<string, Outbox>()
  /** QoS 0 messages dropped by slow-consumer policy, broker-wide. */
  dropped = 0

  /** Makes `publisherId` wait for `outbox` after its current packet (the first congested outbox wins). */
  hold(publisherId: string, outbox: Outbox): void {
    if (!this.held.has(publisherId)) this.held.set(publisherId, outbox)
  }

  /** Forgets a publisher that is gone (its connection left the registry). */
  forget(clientId: string): void {
    this.held.delete(clientId)
  }

  /** After a packet's handler: waits until the outbox `clientId` was held back by no longer holds it. */
  awaitRelease(clientId: string): Effect.Effect<void> {
    const outbox = this.held.get(clientId)
    if (outbox === undefined) return Effect.void
    this.held.delete(clientId)
    return outbox.drained
  }
}

/** What a live connection's QoS 0 sender needs to know about its client. */
export interface Qos0Target {
  readonly clientId: string
  readonly protocolVersion: number
  /** MQTT 5 Maximum Packet Size of the client: larger messages are not sent to it. */
  readonly maximumPacketSize: number | undefined
  /** Encodes a QoS 0 PUBLISH for this client (topic aliases included); called once per message actually sent. */
  encodeQos0(message: Message): Uint8Array
}

/** Sets `outbox`'s slow-consumer limits for the client of `target` (at CONNECT). */
export const configure = (config: BrokerConfig, outbox: Outbox, target: Qos0Target): void =>
  outbox.configure({
    clientId: target.clientId,
    highWaterBytes: config.outboxHighWaterBytes,
    slowConsumerMs: config.slowConsumerMs,
    disconnectMs: config.slowConsumerDisconnectMs,
    disconnectPacket: target.protocolVersion === 5
      ? Codec.encode({ cmd: "disconnect", reasonCode: QUOTA_EXCEEDED }, 5)
      : undefined
  })

/**
 * Sends a QoS 0 message to `target` through its `outbox` (configured by `configure`). Returns the
 * outbox when it is congested (whether the message was queued or dropped), so the delivery can
 * hold the publisher back and have the outbox watched. A function, not a closure per
 * connection: every connection has a sender, most of them idle.
 */
export const sendQos0 = (flow: FlowControl, outbox: Outbox, target: Qos0Target, message: Message): Outbox | undefined => {
  const maximumPacketSize = target.maximumPacketSize
  if (maximumPacketSize !== undefined && publishSize(message) > maximumPacketSize) return undefined
  if (!outbox.congested()) {
    outbox.send(target.encodeQos0(message))
    return undefined
  }
  // decided before encoding: encoding may hand out a topic alias the client must then receive
  if (outbox.admit(publishSize(message) + ALIAS_MARGIN)) outbox.send(target.encodeQos0(message))
  else flow.dropped++
  return outbox
}

/**
 * A delivery found `outbox` (of `subscriberId`) congested: have it watched, and hold the publisher
 * back unless it is the subscriber itself (a publisher never waits for its own outbox) or not a
 * live connection (`publisherLive` false: an application publish, a will).
 */
export const congested = (
  flow: FlowControl,
  outbox: Outbox,
  subscriberId: string,
  publisherId: string | undefined,
  publisherLive: (publisherId: string) => boolean
): Effect.Effect<void> => {
  if (publisherId !== undefined && publisherId !== subscriberId && outbox.holdsBack() && publisherLive(publisherId)) {
    flow.hold(publisherId, outbox)
  }
  return outbox.watch
}
