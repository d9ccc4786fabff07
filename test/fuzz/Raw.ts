/**
 * A bare TCP connection to the broker that keeps every packet the broker sends (decoded by
 * Wire.ServerFrames) and knows whether — and when — the broker closed it. Probes, innocent
 * clients and flooders all speak through it, so none of them depends on a client library that
 * could hide what the broker really did.
 */
import * as net from "node:net"
import { type ServerPacket, ServerFrames, type Version } from "./Wire.ts"

/** One raw connection. */
export class RawConnection {
  /** Every packet received, in order. */
  readonly packets: Array<ServerPacket> = []
  /** The broker ended or reset the connection (our own `destroy` does not count). */
  closed = false
  closedAt: number | undefined
  private readonly frames: ServerFrames
  private readonly wakers = new Set<() => void>()
  private destroyedByUs = false
  private readonly socket: net.Socket

  private constructor(socket: net.Socket, version: Version) {
    this.socket = socket
    this.frames = new ServerFrames(version)
    socket.setNoDelay(true)
    socket.on("data", (chunk: Buffer) => {
      const got = this.frames.push(chunk)
      if (got.length > 0) {
        this.packets.push(...got)
        this.wake()
      } else if (this.frames.error !== undefined) this.wake()
    })
    // a write racing the broker's close ends in EPIPE / ECONNRESET: that is the close, not a test error
    socket.on("error", () => {})
    const brokerClosed = () => {
      if (this.destroyedByUs || this.closed) return
      this.closed = true
      this.closedAt = Date.now()
      this.wake()
    }
    socket.on("end", brokerClosed)
    socket.on("close", brokerClosed)
  }

  /** Opens a connection to 127.0.0.1:`port`; rejects after `timeoutMs`. */
  static open(port: number, version: Version, timeoutMs: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: "127.0.0.1" })
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`TCP connect took over ${timeoutMs} ms`))
      }, timeoutMs)
      socket.once("connect", () => {
        clearTimeout(timer)
        socket.off("error", fail)
        resolve(new RawConnection(socket, version))
      })
      const fail = (error: Error) => {
        clearTimeout(timer)
        reject(error)
      }
      socket.once("error", fail)
    })
  }

  /** Why the broker's bytes could not be decoded, if they could not. */
  get undecodable(): string | undefined {
    return this.frames.error
  }

  private wake(): void {
    for (const wake of [...this.wakers]) wake()
  }

  /** Writes bytes (ignored once the connection is gone); resolves when they were handed to the kernel. */
  write(bytes: Buffer): Promise<void> {
    if (this.closed || this.socket.destroyed) return Promise.resolve()
    return new Promise((resolve) => {
      this.socket.write(bytes, () => resolve())
    })
  }

  /** Half-closes our side (the broker sees end of stream). */
  end(): void {
    if (!this.socket.destroyed) this.socket.end()
  }

  /** Drops the connection without waiting (what a client giving up does). */
  destroy(): void {
    this.destroyedByUs = true
    this.socket.destroy()
    this.wake()
  }

  /** Closed by either side, or undecodable: nothing more will come. */
  private get finished(): boolean {
    return this.closed || this.destroyedByUs || this.undecodable !== undefined
  }

  /**
   * Waits until `done()` holds (checked now, on every packet and on close), the connection is
   * closed, or `timeoutMs` passed; resolves with whether `done()` held.
   */
  waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return Promise.resolve(true)
    if (this.finished) return Promise.resolve(false)
    return new Promise((resolve) => {
      const finish = (value: boolean) => {
        clearTimeout(timer)
        this.wakers.delete(check)
        resolve(value)
      }
      const check = () => {
        if (done()) finish(true)
        else if (this.finished) finish(false)
      }
      const timer = setTimeout(() => finish(done()), timeoutMs)
      this.wakers.add(check)
    })
  }

  /** Waits until the broker closes the connection, at most `timeoutMs`; resolves with whether it did. */
  waitClosed(timeoutMs: number): Promise<boolean> {
    if (this.finished) return Promise.resolve(this.closed)
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer)
        this.wakers.delete(check)
        resolve(this.closed)
      }
      const check = () => {
        if (this.finished) finish()
      }
      const timer = setTimeout(finish, timeoutMs)
      this.wakers.add(check)
    })
  }
}
