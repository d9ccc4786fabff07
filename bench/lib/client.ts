/**
 * A raw MQTT 3.1.1 client over node:net for the load generator: no
 * per-message allocation beyond what the socket itself does, hooks instead of
 * events, QoS 1 PUBACKs batched into one write per received chunk.
 */
import * as net from "node:net"
import { DISCONNECT, encodeConnect, encodePubacks, encodeSubscribe, PacketReader } from "./wire.ts"
import type { ConnectOptions, PacketHandler } from "./wire.ts"

export type PublishHook = (buf: Buffer, payloadStart: number, payloadEnd: number, qos: number, packetId: number, dup: boolean) => void

const noop = (): void => {}

export const withTimeout = <A>(p: Promise<A>, ms: number, what: string): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms)
    p.then(
      (a) => {
        clearTimeout(timer)
        resolve(a)
      },
      (e: unknown) => {
        clearTimeout(timer)
        reject(e)
      }
    )
  })

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export interface Connack {
  readonly sessionPresent: boolean
  readonly returnCode: number
}

export class RawClient implements PacketHandler {
  readonly socket: net.Socket
  private readonly reader: PacketReader
  closed = false
  error: Error | undefined = undefined
  /** called for every PUBLISH received (before its PUBACK is queued) */
  publishHook: PublishHook = noop
  /** called for every PUBACK received */
  pubackHook: (packetId: number) => void = noop
  /** called after each received chunk was processed */
  chunkHook: () => void = noop
  /** called for every other packet type received (e.g. 13 = PINGRESP) */
  otherHook: (type: number) => void = noop
  /** called once when the socket closes */
  closeHook: () => void = noop
  /** acknowledge received QoS 1 PUBLISHes (batched per chunk) */
  autoAck = true
  /** number of PUBLISH packets received (any topic) */
  received = 0
  /** number of chunks (socket reads) received */
  chunks = 0

  private ackIds: Array<number> = []
  private ackN = 0
  private connackWaiter: ((c: Connack) => void) | undefined = undefined
  private readonly subackWaiters = new Map<number, (granted: ReadonlyArray<number>) => void>()
  private readonly closeWaiters: Array<() => void> = []
  private nextSubId = 1

  private constructor(socket: net.Socket) {
    this.socket = socket
    this.reader = new PacketReader(this)
    socket.setNoDelay(true)
    socket.on("data", (chunk: Buffer) => {
      this.chunks++
      try {
        this.reader.push(chunk)
      } catch (e) {
        this.error = e instanceof Error ? e : new Error(String(e))
        socket.destroy()
      }
    })
    socket.on("error", (e) => {
      this.error ??= e
    })
    socket.on("close", () => {
      this.closed = true
      this.connackWaiter = undefined
      this.subackWaiters.clear()
      for (const w of this.closeWaiters.splice(0)) w()
      this.closeHook()
    })
  }

  /** Opens the TCP connection (no MQTT yet). */
  static open(port: number, timeoutMs = 10_000): Promise<RawClient> {
    return withTimeout(
      new Promise<RawClient>((resolve, reject) => {
        const socket = net.connect({ port, host: "127.0.0.1" })
        const onError = (e: Error): void => reject(e)
        socket.once("error", onError)
        socket.once("connect", () => {
          socket.off("error", onError)
          resolve(new RawClient(socket))
        })
      }),
      timeoutMs,
      `tcp connect 127.0.0.1:${port}`
    )
  }

  /** open + CONNECT + wait for CONNACK (rejects on a refusal code). */
  static async connect(port: number, opts: ConnectOptions, timeoutMs = 10_000): Promise<{ client: RawClient; connack: Connack }> {
    const client = await RawClient.open(port, timeoutMs)
    try {
      const connack = await client.handshake(opts, timeoutMs)
      return { client, connack }
    } catch (e) {
      client.destroy()
      throw e
    }
  }

  handshake(opts: ConnectOptions, timeoutMs = 10_000): Promise<Connack> {
    const p = new Promise<Connack>((resolve, reject) => {
      this.connackWaiter = (c) => (c.returnCode === 0 ? resolve(c) : reject(new Error(`CONNACK return code ${c.returnCode}`)))
      this.closeWaiters.push(() => reject(new Error(`connection closed before CONNACK (${opts.clientId})`)))
    })
    this.socket.write(encodeConnect(opts))
    return withTimeout(p, timeoutMs, `CONNACK for ${opts.clientId}`)
  }

  subscribe(topics: ReadonlyArray<{ topic: string; qos: 0 | 1 }>, timeoutMs = 10_000): Promise<ReadonlyArray<number>> {
    const id = this.nextSubId++
    const p = new Promise<ReadonlyArray<number>>((resolve, reject) => {
      this.subackWaiters.set(id, (granted) => {
        if (granted.some((g) => g === 0x80)) reject(new Error(`SUBSCRIBE refused: ${topics.map((t) => t.topic).join(",")}`))
        else resolve(granted)
      })
      this.closeWaiters.push(() => reject(new Error("connection closed before SUBACK")))
    })
    this.socket.write(encodeSubscribe(id, topics))
    return withTimeout(p, timeoutMs, `SUBACK for ${topics.map((t) => t.topic).join(",")}`)
  }

  write(buf: Buffer): boolean {
    return this.socket.write(buf)
  }

  /** Sends DISCONNECT, half-closes and waits until the broker closed the socket. */
  disconnect(timeoutMs = 5_000): Promise<void> {
    if (this.closed) return Promise.resolve()
    const p = new Promise<void>((resolve) => this.closeWaiters.push(resolve))
    this.socket.end(DISCONNECT)
    return withTimeout(p, timeoutMs, "close after DISCONNECT").catch(() => {
      this.destroy()
    })
  }

  destroy(): void {
    if (!this.socket.destroyed) this.socket.destroy()
  }

  // --- PacketHandler -------------------------------------------------------

  onConnack(sessionPresent: boolean, returnCode: number): void {
    const w = this.connackWaiter
    this.connackWaiter = undefined
    if (w !== undefined) w({ sessionPresent, returnCode })
  }

  onPublish(buf: Buffer, _topicStart: number, _topicLen: number, payloadStart: number, payloadEnd: number, qos: number, packetId: number, dup: boolean): void {
    this.received++
    this.publishHook(buf, payloadStart, payloadEnd, qos, packetId, dup)
    if (qos === 1 && this.autoAck) {
      if (this.ackN === this.ackIds.length) this.ackIds.push(packetId)
      else this.ackIds[this.ackN] = packetId
      this.ackN++
    }
  }

  onPuback(packetId: number): void {
    this.pubackHook(packetId)
  }

  onSuback(packetId: number, granted: ReadonlyArray<number>): void {
    const w = this.subackWaiters.get(packetId)
    if (w !== undefined) {
      this.subackWaiters.delete(packetId)
      w(granted)
    }
  }

  onOther(type: number): void {
    this.otherHook(type)
  }

  onChunkEnd(): void {
    if (this.ackN > 0) {
      if (!this.socket.destroyed) this.socket.write(encodePubacks(this.ackIds, this.ackN))
      this.ackN = 0
    }
    this.chunkHook()
  }
}
