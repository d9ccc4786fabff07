/**
 * The subscription filters of the other broker nodes, as this node knows them: a
 * `SubscriptionIndex` whose "clients" are node ids, so "which nodes need this message" is one
 * trie walk, the same matching (wildcards, `$` topics, `$share/...` groups) as for local clients.
 * Plain mutable data, no I/O: the cluster service feeds it from Redis. Routes are remembered per
 * topic until the filters change: a node routes every message it publishes, peers' filters change
 * seldom, and most traffic repeats a few topics.
 *
 * @module
 */
import { type Route, SubscriptionIndex } from "../routing/SubscriptionIndex.ts"

/** Topics whose route is remembered at most; past it they are forgotten all at once. */
const MAX_ROUTES = 4096

/** No peer wants anything: the route of every topic while no peer holds a filter. */
const NOWHERE: Route = { clients: new Map(), shared: [] }

/** Filters per peer node, and the index over all of them. */
export class NodeFilters {
  readonly #index = new SubscriptionIndex()
  readonly #byNode = new Map<string, Set<string>>()
  /** Routes by topic, valid until the next change of any filter. */
  readonly #routes = new Map<string, Route>()
  /** Filters held, over all peers: none, no walk of the index. */
  #filters = 0

  /** The nodes known to have filters (or known at all, after `replace`). */
  get nodes(): ReadonlyArray<string> {
    return Array.from(this.#byNode.keys())
  }

  /** The filters `node` is known to hold. */
  filtersOf(node: string): ReadonlySet<string> {
    return this.#byNode.get(node) ?? new Set()
  }

  /** Whether `node` is known (it has been added, replaced or had a filter). */
  has(node: string): boolean {
    return this.#byNode.has(node)
  }

  /** `node` now holds `filter` (no change if it did). */
  add(node: string, filter: string): void {
    let filters = this.#byNode.get(node)
    if (filters === undefined) {
      filters = new Set()
      this.#byNode.set(node, filters)
    }
    if (filters.has(filter)) return
    filters.add(filter)
    this.#index.add(node, filter, 0)
    this.#changed(1)
  }

  /** `node` no longer holds `filter`. */
  remove(node: string, filter: string): void {
    const filters = this.#byNode.get(node)
    if (filters === undefined || !filters.delete(filter)) return
    this.#index.remove(node, filter)
    this.#changed(-1)
  }

  /** `node`'s filters are exactly `filters` (a snapshot read from Redis). */
  replace(node: string, filters: Iterable<string>): void {
    this.drop(node)
    const fresh = new Set<string>()
    this.#byNode.set(node, fresh)
    for (const filter of filters) {
      if (fresh.has(filter)) continue
      fresh.add(filter)
      this.#index.add(node, filter, 0)
    }
    this.#changed(fresh.size)
  }

  /** Forgets `node` and its filters (it left, or its heartbeat expired). */
  drop(node: string): void {
    const filters = this.#byNode.get(node)
    if (filters === undefined) return
    this.#index.removeClient(node, filters)
    this.#byNode.delete(node)
    this.#changed(-filters.size)
  }

  /**
   * The peers with a filter matching `topic`: plain ones in `clients`, shared groups with their
   * member nodes in `shared`. The same object for the same topic until a filter changes: read it, never change it.
   */
  route(topic: string): Route {
    if (this.#filters === 0) return NOWHERE
    let route = this.#routes.get(topic)
    if (route === undefined) {
      route = this.#index.route(topic)
      if (this.#routes.size >= MAX_ROUTES) this.#routes.clear()
      this.#routes.set(topic, route)
    }
    return route
  }

  #changed(filters: number): void {
    this.#filters += filters
    this.#routes.clear()
  }
}
