/**
 * Topic trie mapping subscription filters to subscribed clients.
 *
 * Plain mutable data structure (no Effect inside): `match` runs once per
 * published message, so it avoids closures and recursion and reuses scratch
 * stacks across calls.
 *
 * @module
 */

import { parseSharedFilter } from "../protocol/Topic.ts"
import type { QoS } from "../session/Message.ts"
import type { Subscription } from "../session/SessionState.ts"

/** Topics whose routes are kept between changes of the index. */
const ROUTE_CACHE_SIZE = 512

/** What one client receives for one published message: one copy, however many of its filters match. */
export interface Matched {
  /** The highest granted QoS among the matching subscriptions. */
  qos: QoS
  /** Whether a matching subscription asked for Retain As Published. */
  retainAsPublished: boolean
  /** The Subscription Identifiers of the matching subscriptions (MQTT 5), if any. */
  identifiers: Array<number> | undefined
}

/**
 * A shared subscription `$share/{group}/{filter}`: each message goes to one member. The cursor
 * lets the broker rotate through members.
 */
export class SharedGroup {
  readonly name: string
  /** The whole filter, `$share/{group}/{filter}`: names the group across broker nodes. */
  readonly key: string
  readonly members = new Map<string, Subscription>()
  cursor = 0
  constructor(name: string, key: string) {
    this.name = name
    this.key = key
  }
}

/**
 * Told when a (client, filter) pair enters or leaves the index, with the filter as subscribed
 * (`$share/...` included): how the cluster keeps this node's filter set in Redis.
 */
export interface FilterObserver {
  readonly added: (filter: string) => void
  readonly removed: (filter: string) => void
}

/** Who a published message goes to (possibly shared between calls of `route`: read only). */
export interface Route {
  readonly clients: Map<string, Matched>
  /** Each matching shared subscription, to deliver to one of its members. */
  readonly shared: Array<SharedGroup>
}

/**
 * A trie node for one filter level. Wildcard children get dedicated fields so
 * `match` tests them with a property read instead of a Map lookup. Maps are
 * created lazily because most nodes are leaves or pure path segments.
 */
class Node {
  /** Children for literal levels, keyed by the level text (may be ""). */
  children: Map<string, Node> | undefined = undefined
  /** Child for a `+` level. */
  plus: Node | undefined = undefined
  /** Child for a `#` level; only ever holds subscribers (`#` is last). */
  hash: Node | undefined = undefined
  /** Subscriptions whose filter ends at this node, keyed by client id. */
  subscribers: Map<string, Subscription> | undefined = undefined
  /** Shared subscriptions whose filter ends at this node, by group name. */
  shared: Map<string, SharedGroup> | undefined = undefined

  /** Whether the node holds nothing and can be pruned from its parent. */
  isEmpty(): boolean {
    return (
      this.plus === undefined &&
      this.hash === undefined &&
      (this.children === undefined || this.children.size === 0) &&
      (this.subscribers === undefined || this.subscribers.size === 0) &&
      (this.shared === undefined || this.shared.size === 0)
    )
  }

  /** The child for `level`, or undefined. */
  child(level: string): Node | undefined {
    if (level === "+") return this.plus
    if (level === "#") return this.hash
    return this.children?.get(level)
  }

  /** The child for `level`, created if missing. */
  childOrCreate(level: string): Node {
    if (level === "+") return (this.plus ??= new Node())
    if (level === "#") return (this.hash ??= new Node())
    const children = (this.children ??= new Map())
    let node = children.get(level)
    if (node === undefined) {
      node = new Node()
      children.set(level, node)
    }
    return node
  }

  /** Detaches the (empty) child for `level`. */
  deleteChild(level: string): void {
    if (level === "+") this.plus = undefined
    else if (level === "#") this.hash = undefined
    else if (this.children !== undefined) {
      this.children.delete(level)
      if (this.children.size === 0) this.children = undefined
    }
  }
}

/** Raises each subscriber's QoS in `out` to at least its QoS in `subs`. */
const mergeMax = (subs: Map<string, Subscription> | undefined, out: Map<string, QoS>): void => {
  if (subs === undefined) return
  for (const [clientId, sub] of subs) {
    const current = out.get(clientId)
    if (current === undefined || sub.qos > current) out.set(clientId, sub.qos)
  }
}

/** Merges a node's subscriptions into a route: one entry per client, No Local honoured. */
/** A route being built, and whether it depends on who published (a No Local subscription matched). */
interface Building {
  readonly route: Route
  readonly publisherId: string | undefined
  noLocal: boolean
}

const mergeRoute = (node: Node, building: Building): void => {
  const { route, publisherId } = building
  const subs = node.subscribers
  if (subs !== undefined) {
    for (const [clientId, sub] of subs) {
      if (sub.noLocal === true) {
        building.noLocal = true
        if (clientId === publisherId) continue
      }
      const current = route.clients.get(clientId)
      if (current === undefined) {
        route.clients.set(clientId, {
          qos: sub.qos,
          retainAsPublished: sub.retainAsPublished === true,
          identifiers: sub.identifier === undefined ? undefined : [sub.identifier]
        })
      } else {
        if (sub.qos > current.qos) current.qos = sub.qos
        if (sub.retainAsPublished === true) current.retainAsPublished = true
        if (sub.identifier !== undefined) (current.identifiers ??= []).push(sub.identifier)
      }
    }
  }
  if (node.shared !== undefined) for (const group of node.shared.values()) route.shared.push(group)
}

/**
 * Index of (client, filter) subscriptions, answering "who receives a message
 * published to this topic, and at what QoS".
 *
 * Filters passed to `add` / `remove` must already be valid (see
 * `isValidTopicFilter`); the index does not re-validate them.
 */
export class SubscriptionIndex {
  readonly #root = new Node()
  #size = 0
  // Scratch DFS stacks for `match`, reused across calls to avoid allocating
  // per message. Iterative rather than recursive because a topic may have
  // tens of thousands of levels and a deep filter could exhaust the JS stack.
  readonly #stackNodes: Array<Node | undefined> = []
  readonly #stackDepths: Array<number> = []
  #observer: FilterObserver | undefined = undefined
  // Routes of recent topics, valid until the index changes (`#changed`): a stream of messages on
  // the same topics routes each one with a Map lookup instead of a split, a trie walk and a new Route.
  readonly #routes = new Map<string, Route>()

  /** The index changed: every cached route may be wrong. */
  #changed(): void {
    if (this.#routes.size > 0) this.#routes.clear()
  }

  /** From now on `observer` is told of every pair added or removed (what is already held is not). */
  observe(observer: FilterObserver | undefined): void {
    this.#observer = observer
  }

  /** Number of (client, filter) pairs in the index. */
  get size(): number {
    return this.#size
  }

  /**
   * Subscribes `clientId` to `filter` (a bare QoS, or the subscription with its options). If the
   * client already has this exact filter, its subscription is replaced. A `$share/{group}/{filter}`
   * filter joins the group's shared subscription on `{filter}`.
   */
  add(clientId: string, filter: string, subscription: QoS | Subscription): void {
    const sub: Subscription = typeof subscription === "number" ? { qos: subscription } : subscription
    const shared = parseSharedFilter(filter)
    let node = this.#root
    for (const level of (shared?.filter ?? filter).split("/")) node = node.childOrCreate(level)
    let subs: Map<string, Subscription>
    if (shared === undefined) {
      subs = node.subscribers ??= new Map()
    } else {
      const groups = (node.shared ??= new Map())
      let group = groups.get(shared.group)
      if (group === undefined) {
        group = new SharedGroup(shared.group, filter)
        groups.set(shared.group, group)
      }
      subs = group.members
    }
    const isNew = !subs.has(clientId)
    subs.set(clientId, sub)
    this.#changed()
    if (isNew) {
      this.#size++
      this.#observer?.added(filter)
    }
  }

  /**
   * Removes `clientId`'s subscription to `filter`. Returns whether it existed.
   * Nodes left empty are pruned so the trie does not grow without bound as
   * clients come and go.
   */
  remove(clientId: string, filter: string): boolean {
    const shared = parseSharedFilter(filter)
    const levels = (shared?.filter ?? filter).split("/")
    // path[i] is the parent of the node for levels[i].
    const path: Array<Node> = []
    let node: Node | undefined = this.#root
    for (const level of levels) {
      path.push(node)
      node = node.child(level)
      if (node === undefined) return false
    }
    if (shared === undefined) {
      const subs = node.subscribers
      if (subs === undefined || !subs.delete(clientId)) return false
      if (subs.size === 0) node.subscribers = undefined
    } else {
      const group = node.shared?.get(shared.group)
      if (group === undefined || !group.members.delete(clientId)) return false
      if (group.members.size === 0) node.shared!.delete(shared.group)
      if (node.shared!.size === 0) node.shared = undefined
    }
    this.#size--
    this.#changed()
    this.#observer?.removed(filter)
    // Prune bottom-up, stopping at the first node still in use.
    for (let i = levels.length - 1; i >= 0 && node.isEmpty(); i--) {
      const parent: Node = path[i]!
      parent.deleteChild(levels[i]!)
      node = parent
    }
    return true
  }

  /** Removes every subscription of `clientId` to the listed `filters`. */
  removeClient(clientId: string, filters: Iterable<string>): void {
    for (const filter of filters) this.remove(clientId, filter)
  }

  /**
   * Every client with at least one filter matching topic name `topic`, mapped
   * to the highest QoS among its matching filters, so overlapping
   * subscriptions yield a single delivery. Topics starting with `$` are not
   * matched by a leading `+` or `#`.
   */
  match(topic: string): Map<string, QoS> {
    const out = new Map<string, QoS>()
    this.#visit(topic, (node) => mergeMax(node.subscribers, out))
    return out
  }

  /**
   * Who receives a message published to `topic` by `publisherId`: one entry per client (highest
   * QoS, every matching Subscription Identifier, No Local honoured), and each matching shared
   * subscription (the broker picks one member). The route may be shared with later calls until the
   * index changes: read it, never change it.
   */
  route(topic: string, publisherId?: string): Route {
    const cached = this.#routes.get(topic)
    if (cached !== undefined) return cached
    const building: Building = { route: { clients: new Map(), shared: [] }, publisherId, noLocal: false }
    this.#visit(topic, (node) => mergeRoute(node, building))
    // a route that depends on the publisher (No Local) is not kept; once the cache is full, no
    // more are kept until the index changes (a topic per device would only churn it)
    if (!building.noLocal && this.#routes.size < ROUTE_CACHE_SIZE) this.#routes.set(topic, building.route)
    return building.route
  }

  /** Calls `onMatch` for every node whose filter matches `topic` (iterative DFS; see the stacks). */
  #visit(topic: string, onMatch: (node: Node) => void): void {
    const levels = topic.split("/")
    const depth = levels.length
    const dollar = topic.charCodeAt(0) === 0x24 // "$"
    const nodes = this.#stackNodes
    const depths = this.#stackDepths
    let sp = 0
    nodes[sp] = this.#root
    depths[sp] = 0
    sp++
    while (sp > 0) {
      sp--
      const node = nodes[sp]!
      const i = depths[sp]!
      // Drop the reference so the scratch stack never pins pruned nodes.
      nodes[sp] = undefined
      // Wildcards at the root never match $-topics.
      const wild = i !== 0 || !dollar
      // "#" matches the remaining levels, including none (the parent level).
      if (wild && node.hash !== undefined) onMatch(node.hash)
      if (i === depth) {
        onMatch(node)
        continue
      }
      const literal = node.children?.get(levels[i]!)
      if (literal !== undefined) {
        nodes[sp] = literal
        depths[sp] = i + 1
        sp++
      }
      if (wild && node.plus !== undefined) {
        nodes[sp] = node.plus
        depths[sp] = i + 1
        sp++
      }
    }
  }

  /**
   * Number of trie nodes, including the root (so 1 when empty). Walks the
   * whole trie: for tests and diagnostics, not for the hot path.
   */
  nodeCount(): number {
    let count = 0
    const pending: Array<Node> = [this.#root]
    for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
      count++
      if (node.plus !== undefined) pending.push(node.plus)
      if (node.hash !== undefined) pending.push(node.hash)
      if (node.children !== undefined) for (const child of node.children.values()) pending.push(child)
    }
    return count
  }
}
