/**
 * Where messages go: the subscription index and the retained messages. Pure bookkeeping,
 * no sessions and no sockets; `broker/Delivery` turns its answers into deliveries.
 */
import { isSystemTopic } from "../protocol/Topic.ts"
import type { Message } from "../session/Message.ts"
import { RetainedStore } from "./RetainedStore.ts"
import { SubscriptionIndex } from "./SubscriptionIndex.ts"

/** The subscription index and retained store of one broker. */
export class Router {
  readonly subscriptions = new SubscriptionIndex()
  readonly retained = new RetainedStore<Message>()

  /**
   * Records a PUBLISH with RETAIN=1: an empty payload clears the topic's retained
   * message, anything else replaces it.
   */
  retain(message: Message): void {
    if (message.payload.length === 0) this.retained.delete(message.topic)
    else this.retained.set(message.topic, message)
  }

  /** Retained messages to send to a new subscription on `filter`. */
  retainedFor(filter: string): Array<Message> {
    return this.retained.match(filter).map(([, message]) => message)
  }

  /** Whether a client may publish to `topic` (`$SYS` belongs to the broker). */
  static acceptsPublish(topic: string): boolean {
    return !isSystemTopic(topic)
  }
}
