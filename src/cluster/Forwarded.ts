/**
 * A message one node forwards to another, with what the receiving node needs to deliver it as
 * the publishing node would have: the publisher (No Local) and the shared subscriptions it serves.
 *
 * @module
 */
import type { Message } from "../session/Message.ts"

/** A message forwarded to one node. */
export interface Forwarded {
  readonly message: Message
  /** The publishing client, for No Local on the receiving node; none for a will or the broker's own. */
  readonly publisherId: string | undefined
  /** The shared subscriptions (`$share/group/filter`) the receiving node serves with this message. */
  readonly shared: ReadonlyArray<string>
}
