/**
 * The session's FIFO of waiting messages, as an immutable value with O(1) amortized
 * `push` and `drop`. Versions share one append-only backing array and each sees only its
 * own `[start, end)` window of it: a push appends in place when nobody has appended past
 * this version's end, and copies the window otherwise. So old versions stay valid (they are
 * never mutated inside their window) without copying the queue on every enqueue, which made
 * a deep queue cost O(n) per message.
 */
import type { Message } from "./Message.ts"

/** Backing arrays whose dropped prefix exceeds this are compacted on the next drop. */
const COMPACT_AFTER = 64

/** An immutable FIFO of messages. */
export class MessageQueue implements Iterable<Message> {
  /** The empty queue. */
  static readonly empty: MessageQueue = new MessageQueue([], 0, 0)

  /** A queue holding `messages`, oldest first. */
  static from(messages: Iterable<Message>): MessageQueue {
    const items = Array.from(messages)
    return items.length === 0 ? MessageQueue.empty : new MessageQueue(items, 0, items.length)
  }

  private readonly items: Array<Message>
  private readonly start: number
  private readonly end: number

  private constructor(items: Array<Message>, start: number, end: number) {
    this.items = items
    this.start = start
    this.end = end
  }

  /** Number of messages. */
  get length(): number {
    return this.end - this.start
  }

  /** The message at `index` (0 = oldest), or undefined. */
  at(index: number): Message | undefined {
    return index >= 0 && index < this.length ? this.items[this.start + index] : undefined
  }

  /** This queue with `message` appended. */
  push(message: Message): MessageQueue {
    if (this.items.length === this.end) {
      this.items.push(message)
      return new MessageQueue(this.items, this.start, this.end + 1)
    }
    const items = this.items.slice(this.start, this.end)
    items.push(message)
    return new MessageQueue(items, 0, items.length)
  }

  /** This queue without its `count` oldest messages. */
  drop(count: number): MessageQueue {
    if (count <= 0) return this
    if (count >= this.length) return MessageQueue.empty
    const start = this.start + count
    // compact so dropped messages do not stay reachable from a long-lived queue
    if (start > COMPACT_AFTER && start * 2 > this.items.length) {
      const items = this.items.slice(start, this.end)
      return new MessageQueue(items, 0, items.length)
    }
    return new MessageQueue(this.items, start, this.end)
  }

  /**
   * How this queue was derived from `older` by pushes and drops, so a store can write only the
   * difference: the number of `older`'s oldest messages gone, and the messages added (newest last).
   * Undefined when that cannot be told cheaply (the two do not share a backing array, e.g. after a
   * compaction): compare the whole queues then. O(number appended).
   */
  changesSince(older: MessageQueue): { readonly dropped: number; readonly appended: ReadonlyArray<Message> } | undefined {
    if (older === this) return { dropped: 0, appended: [] }
    // positions of a backing array are written once and never change, so windows over the same
    // array that only moved forward differ exactly by what left the front and what was appended
    if (older.items !== this.items || this.start < older.start || this.end < older.end) return undefined
    return { dropped: this.start - older.start, appended: this.items.slice(Math.max(older.end, this.start), this.end) }
  }

  /** The messages, oldest first, as a new array. */
  toArray(): Array<Message> {
    return this.items.slice(this.start, this.end)
  }

  [Symbol.iterator](): Iterator<Message> {
    return this.toArray()[Symbol.iterator]()
  }

  /** Readable in logs and fast-check counterexamples. */
  toJSON(): Array<Message> {
    return this.toArray()
  }
}
