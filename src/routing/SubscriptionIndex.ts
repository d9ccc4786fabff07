/**
 * Topic trie mapping subscription filters to subscribed clients.
 *
 * Plain mutable data structure (no Effect inside): `match` runs once per
 * published message, so it avoids closures and recursion and reuses scratch
 * stacks across calls.
 *
 * @module
 */

type QoS = 0 | 1 | 2

/**
 * One client's subscription to one filter. A record rather than a bare QoS so
 * MQTT 5 options (no local, retain as published, retain handling,
 * subscription identifier) and shared-subscription data can be added later
 * without restructuring the trie.
 */
interface Subscription {
  readonly qos: QoS
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

  /** Whether the node holds nothing and can be pruned from its parent. */
  isEmpty(): boolean {
    return (
      this.plus === undefined &&
      this.hash === undefined &&
      (this.children === undefined || this.children.size === 0) &&
      (this.subscribers === undefined || this.subscribers.size === 0)
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

  /** Number of (client, filter) pairs in the index. */
  get size(): number {
    return this.#size
  }

  /**
   * Subscribes `clientId` to `filter` at `qos`. If the client already has
   * this exact filter, its subscription is replaced.
   */
  add(clientId: string, filter: string, qos: QoS): void {
    let node = this.#root
    for (const level of filter.split("/")) node = node.childOrCreate(level)
    const subs = (node.subscribers ??= new Map())
    if (!subs.has(clientId)) this.#size++
    subs.set(clientId, { qos })
  }

  /**
   * Removes `clientId`'s subscription to `filter`. Returns whether it existed.
   * Nodes left empty are pruned so the trie does not grow without bound as
   * clients come and go.
   */
  remove(clientId: string, filter: string): boolean {
    const levels = filter.split("/")
    // path[i] is the parent of the node for levels[i].
    const path: Array<Node> = []
    let node: Node | undefined = this.#root
    for (const level of levels) {
      path.push(node)
      node = node.child(level)
      if (node === undefined) return false
    }
    const subs = node.subscribers
    if (subs === undefined || !subs.delete(clientId)) return false
    this.#size--
    if (subs.size === 0) node.subscribers = undefined
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
      if (wild && node.hash !== undefined) mergeMax(node.hash.subscribers, out)
      if (i === depth) {
        mergeMax(node.subscribers, out)
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
    return out
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
