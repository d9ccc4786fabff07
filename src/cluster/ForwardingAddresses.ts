/**
 * Forwarding addresses: clients this node handed to another node (a takeover) whose
 * subscriptions that node does not route yet. What still reaches this node for such a client is
 * sent on, made for it (QoS, RETAIN, identifiers), instead of being dropped. Plain data, no I/O:
 * the cluster service sends what `route` says and tells it when an address may go.
 *
 * The claimant says when it routes the client itself (`settled`); an address goes once that is
 * said **and** this node knows the claimant holds every filter of the client — its announcements
 * and its notice arrive on different connections, in either order, and until this node knows,
 * its own publishers would send the client's messages nowhere.
 *
 * @module
 */
import { SubscriptionIndex } from "../routing/SubscriptionIndex.ts"
import { type Message, minQos } from "../session/Message.ts"
import type { Subscription } from "../session/SessionState.ts"

/** What a moving client's filters do to this node's announced filter set. */
export interface FilterHolds {
  /** The filter is held once more: it stays announced while the client moves. */
  readonly hold: (filter: string) => void
  /** One hold less: the last one gone, the filter is no longer announced. */
  readonly unhold: (filter: string) => void
}

interface Address {
  readonly node: string
  readonly filters: ReadonlyArray<string>
  settled: boolean
}

/** A message to send on: to `node`, for `clientId`, made for it. */
export interface Onward {
  readonly node: string
  readonly clientId: string
  readonly message: Message
}

/** The forwarding addresses of one node. */
export class ForwardingAddresses {
  readonly #index = new SubscriptionIndex()
  readonly #addresses = new Map<string, Address>()
  readonly #holds: FilterHolds

  constructor(holds: FilterHolds) {
    this.#holds = holds
  }

  /** Whether there is any address (the message path asks nothing more when there is none). */
  get isEmpty(): boolean {
    return this.#addresses.size === 0
  }

  /** `clientId` went to `node` with `subscriptions`: send on what matches them (replaces an older address). */
  start(clientId: string, node: string, subscriptions: ReadonlyMap<string, Subscription>): void {
    const previous = this.#addresses.get(clientId)
    if (previous !== undefined) this.stop(clientId, previous.node)
    this.#addresses.set(clientId, { node, filters: Array.from(subscriptions.keys()), settled: false })
    for (const [filter, subscription] of subscriptions) {
      this.#holds.hold(filter)
      this.#index.add(clientId, filter, subscription)
    }
  }

  /** Whether `clientId` has an address. */
  has(clientId: string): boolean {
    return this.#addresses.has(clientId)
  }

  /** Removes `clientId`'s address if it still points to `node`. */
  stop(clientId: string, node: string): void {
    const address = this.#addresses.get(clientId)
    if (address === undefined || address.node !== node) return
    this.#addresses.delete(clientId)
    this.#index.removeClient(clientId, address.filters)
    for (const filter of address.filters) this.#holds.unhold(filter)
  }

  /** `node` says it routes `clientId` itself; `known`: the filters this node knows `node` holds. */
  settled(clientId: string, node: string, known: ReadonlySet<string>): void {
    const address = this.#addresses.get(clientId)
    if (address === undefined || address.node !== node) return
    address.settled = true
    if (address.filters.every((filter) => known.has(filter))) this.stop(clientId, node)
  }

  /** `node`'s filters as this node knows them changed: the addresses settled there that waited for it may go. */
  recheck(node: string, known: ReadonlySet<string>): void {
    for (const [clientId, address] of this.#addresses) {
      if (address.settled && address.node === node) this.settled(clientId, node, known)
    }
  }

  /** What to send on for `message` (from `publisherId`, for No Local): one per moving client it matches. */
  route(message: Message, publisherId: string | undefined): Array<Onward> {
    const matched = this.#index.route(message.topic, publisherId)
    const onward: Array<Onward> = []
    for (const [clientId, m] of matched.clients) {
      const address = this.#addresses.get(clientId)
      if (address === undefined) continue
      onward.push({
        node: address.node,
        clientId,
        message: {
          ...message,
          qos: minQos(message.qos, m.qos),
          retain: m.retainAsPublished && message.retain,
          ...(m.identifiers === undefined ? {} : { subscriptionIds: m.identifiers })
        }
      })
    }
    return onward
  }
}
