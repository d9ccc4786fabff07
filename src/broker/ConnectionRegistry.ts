/**
 * The live connections by client id: where deliveries find an online client, and where a
 * second CONNECT with the same client id finds the connection it must take over. It also holds
 * the broker-wide flow-control state, which is keyed by the same client ids.
 */
import type { Effect } from "effect"
import type { Message } from "../session/Message.ts"
import type { Outgoing } from "../session/Transitions.ts"
import { FlowControl } from "./FlowControl.ts"
import type { Outbox } from "./Outbox.ts"

/** What the rest of the broker may do with a live, connected client. */
export interface LiveConnection {
  readonly clientId: string
  /** The user name it authenticated as (undefined: anonymous): deliveries to it are authorized as this user. */
  readonly username: string | undefined
  /** Sends what a session transition produced (call under the client's lock). */
  readonly send: (outgoing: ReadonlyArray<Outgoing>) => void
  /**
   * Sends a QoS 0 message. Returns the client's outbox when it is congested (the message was
   * queued or, past the cap, dropped and counted), so the publisher can be held back.
   */
  readonly sendQos0: (message: Message) => Outbox | undefined
  /** Asks the connection to close (session takeover) and waits until it has fully ended. */
  readonly takeOver: Effect.Effect<void>
  /** Bytes waiting in its outbox (read by the metrics, not on the message path). */
  readonly outboxBytes: () => number
}

/** Client id → live connection. */
export class ConnectionRegistry {
  private readonly live = new Map<string, LiveConnection>()
  /** Which publishers wait for which congested outbox, and the QoS 0 drop total. */
  readonly flow = new FlowControl()
  /**
   * The user name of each client id's last connection, kept once it is gone: a message queued
   * for an offline session is authorized as the user who owns it. Named users only; forgotten
   * when the session expires.
   */
  private readonly offlineUsernames = new Map<string, string | undefined>()

  /** The live connection of `clientId`, if it is connected. */
  get(clientId: string): LiveConnection | undefined {
    return this.live.get(clientId)
  }

  /** Registers a connection that completed CONNECT. */
  set(connection: LiveConnection): void {
    this.live.set(connection.clientId, connection)
    this.offlineUsernames.delete(connection.clientId)
  }

  /** The user name of `clientId`'s live connection, else of its last one (undefined: anonymous or unknown). */
  usernameOf(clientId: string): string | undefined {
    return this.live.get(clientId)?.username ?? this.offlineUsernames.get(clientId)
  }

  /** Forgets a client id's user name (its session is gone). */
  forgetUsername(clientId: string): void {
    this.offlineUsernames.delete(clientId)
  }

  /** Removes `connection` if it is still the registered one for its client id. */
  delete(connection: LiveConnection): boolean {
    if (this.live.get(connection.clientId) !== connection) return false
    this.flow.forget(connection.clientId)
    if (connection.username !== undefined) this.offlineUsernames.set(connection.clientId, connection.username)
    return this.live.delete(connection.clientId)
  }

  /** Number of live connections. */
  get size(): number {
    return this.live.size
  }

  /** CONNECTs holding a place under `maxConnections` while they are checked. */
  private seats = 0

  /** Live connections plus CONNECTs still being checked: what `maxConnections` limits. */
  get occupied(): number {
    return this.live.size + this.seats
  }

  /**
   * Holds a place for a CONNECT until it is registered or refused, so CONNECTs checked at the
   * same time (passwords are checked asynchronously) cannot together pass `maxConnections`.
   */
  reserve(): () => void {
    this.seats++
    let held = true
    return () => {
      if (held) this.seats--
      held = false
    }
  }

  /** Every live connection. */
  values(): IterableIterator<LiveConnection> {
    return this.live.values()
  }
}
