/**
 * Which broker nodes a published message goes to: pure policy, no I/O. Every peer with a
 * matching plain filter gets the message once; each matching shared subscription
 * (`$share/{group}/{filter}`) is served by exactly one node among those with members of the
 * group, taken in turn, and that node then picks one of its own members (`broker/Delivery`).
 * A peer with nothing matching gets nothing.
 *
 * @module
 */
import type { Route, SharedGroup } from "../routing/SubscriptionIndex.ts"

/** What to do with one message across the cluster. */
export interface Plan {
  /** The shared subscriptions (by `$share/group/filter`) this node serves with its own members. */
  readonly local: Set<string>
  /** The peers to send the message to, each with the shared subscriptions it is to serve. */
  readonly sends: Map<string, Array<string>>
}

/** Round-robin position per shared subscription, kept by the caller between messages. */
export type Cursors = Map<string, number>

/** Shared subscriptions kept in `Cursors` at most; past it the positions start again (turns stay fair enough). */
const MAX_CURSORS = 10_000

/**
 * The plan for a message: `remote` is what the peers' filters match (`NodeFilters.route`),
 * `localShared` the matching shared subscriptions with members on this node (`self`).
 */
export const plan = (remote: Route, localShared: ReadonlyArray<SharedGroup>, self: string, cursors: Cursors): Plan => {
  const sends = new Map<string, Array<string>>()
  for (const node of remote.clients.keys()) sends.set(node, [])
  const local = new Set<string>()
  if (remote.shared.length === 0 && localShared.length === 0) return { local, sends }
  // candidates per shared subscription: the peers with members, and this node if it has some
  const candidates = new Map<string, Array<string>>()
  for (const group of remote.shared) {
    const nodes = candidates.get(group.key) ?? []
    for (const node of group.members.keys()) nodes.push(node)
    candidates.set(group.key, nodes)
  }
  for (const group of localShared) {
    if (group.members.size === 0) continue
    const nodes = candidates.get(group.key) ?? []
    nodes.push(self)
    candidates.set(group.key, nodes)
  }
  if (cursors.size > MAX_CURSORS) cursors.clear()
  for (const [key, nodes] of candidates) {
    if (nodes.length === 0) continue
    // the same order on every call, so the turn goes round the nodes
    nodes.sort()
    const turn = cursors.get(key) ?? 0
    cursors.set(key, turn + 1)
    const chosen = nodes[turn % nodes.length]!
    if (chosen === self) {
      local.add(key)
      continue
    }
    const keys = sends.get(chosen)
    if (keys === undefined) sends.set(chosen, [key])
    else keys.push(key)
  }
  return { local, sends }
}
