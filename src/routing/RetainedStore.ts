/**
 * Retained messages keyed by topic name.
 *
 * The store only stores: the broker decides that an empty retained payload
 * means "clear" and calls `delete`.
 *
 * @module
 */
import { matches } from "../protocol/Topic.ts"

/** Whether a (valid) filter contains a `+` or `#` wildcard. */
const hasWildcard = (filter: string): boolean => filter.includes("+") || filter.includes("#")

/** Where a `RetainedStore` writes its changes through to (a durable store). */
export interface RetainedSink<M> {
  readonly set: (topic: string, message: M) => void
  readonly delete: (topic: string) => void
}

/**
 * Mutable store of the last retained message per topic name, generic over the
 * message representation `M`.
 */
export class RetainedStore<M> {
  readonly #messages = new Map<string, M>()
  #sink: RetainedSink<M> | undefined

  /** From now on every change is also written to `sink` (what is already held is not). */
  writeThrough(sink: RetainedSink<M>): void {
    this.#sink = sink
  }

  /** Number of retained messages. */
  get size(): number {
    return this.#messages.size
  }

  /** Retains `message` for `topic`, replacing any previous one. */
  set(topic: string, message: M): void {
    this.#messages.set(topic, message)
    this.#sink?.set(topic, message)
  }

  /** Drops the retained message for `topic`. Returns whether there was one. */
  delete(topic: string): boolean {
    const had = this.#messages.delete(topic)
    if (had) this.#sink?.delete(topic)
    return had
  }

  /**
   * Sets (a message) or clears (`undefined`) the retained message of `topic` without writing
   * through: for changes that come from where the sink writes (another broker node's, through Redis).
   */
  load(topic: string, message: M | undefined): void {
    if (message === undefined) this.#messages.delete(topic)
    else this.#messages.set(topic, message)
  }

  /** The retained message for `topic`, if any. */
  get(topic: string): M | undefined {
    return this.#messages.get(topic)
  }

  /**
   * All retained messages whose topic matches the (valid) topic filter
   * `filter`, as `[topic, message]` pairs in insertion order. Topics starting
   * with `$` are not matched by a leading `+` or `#`.
   */
  match(filter: string): Array<[topic: string, message: M]> {
    // A wildcard-free filter matches exactly the topic with the same text.
    if (!hasWildcard(filter)) {
      const message = this.#messages.get(filter)
      return message === undefined && !this.#messages.has(filter) ? [] : [[filter, message as M]]
    }
    // Linear scan: SUBSCRIBE is far rarer than PUBLISH, so a topic trie for
    // retained messages is not worth its upkeep yet.
    const out: Array<[topic: string, message: M]> = []
    for (const [topic, message] of this.#messages) {
      if (matches(filter, topic)) out.push([topic, message])
    }
    return out
  }
}
