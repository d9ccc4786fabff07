/**
 * Where retained messages outlive the broker process. The router keeps them in memory (its
 * `RetainedStore`) and writes every change through to this service when one is provided; at
 * start the broker loads what it holds. Without it, retained messages live in memory only.
 * A persistent `SessionStateProvider` Layer provides it too (see `SqliteSessionStateProvider`).
 */
import { Context } from "effect"
import type { Message } from "../Message.ts"

/** Durable storage of the retained message per topic. */
export class RetainedMessageStore extends Context.Service<RetainedMessageStore, {
  /** The retained messages stored when the Layer was built (the broker loads them at start). */
  readonly stored: ReadonlyArray<Message>
  /** Records `message` as its topic's retained message; durable with the provider's next commit. */
  readonly set: (topic: string, message: Message) => void
  /** Forgets the retained message of `topic`; durable with the provider's next commit. */
  readonly delete: (topic: string) => void
}>()("effect-mqtt-broker/session/RetainedMessageStore") {}
