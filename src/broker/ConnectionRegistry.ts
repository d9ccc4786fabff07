/**
 * The live connections by client id: where deliveries find an online client, and where a
 * second CONNECT with the same client id finds the connection it must take over.
 */
import type { Effect } from "effect"
import type { Message } from "../session/Message.ts"
import type { Outgoing } from "../session/Transitions.ts"

/** What the rest of the broker may do with a live, connected client. */
export interface LiveConnection {
  readonly clientId: string
  /** Sends what a session transition produced (call under the client's lock). */
  readonly send: (outgoing: ReadonlyArray<Outgoing>) => void
  /** Sends a QoS 0 message; it may be dropped if the client is not keeping up. */
  readonly sendQos0: (message: Message) => void
  /** Asks the connection to close (session takeover) and waits until it has fully ended. */
  readonly takeOver: Effect.Effect<void>
}

/** Client id → live connection. */
export class ConnectionRegistry {
  private readonly live = new Map<string, LiveConnection>()

  get(clientId: string): LiveConnection | undefined {
    return this.live.get(clientId)
  }

  set(connection: LiveConnection): void {
    this.live.set(connection.clientId, connection)
  }

  /** Removes `connection` if it is still the registered one for its client id. */
  delete(connection: LiveConnection): boolean {
    if (this.live.get(connection.clientId) !== connection) return false
    return this.live.delete(connection.clientId)
  }

  get size(): number {
    return this.live.size
  }

  values(): IterableIterator<LiveConnection> {
    return this.live.values()
  }
}
