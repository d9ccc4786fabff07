/**
 * Fixed-header framing: splits a connection's inbound bytes into whole MQTT packets, so each
 * packet's bytes are known (MQTT 5 user properties are re-read from them in wire order) and an
 * oversized or malformed Remaining Length is refused from the header, before the body arrives.
 *
 * A packet longer than what has arrived is received into one buffer allocated at its final size
 * once its header is read, so every byte is copied once: receiving is linear in the packet's
 * size whatever the chunking. That buffer is taken from a `FrameAllowance` shared by all
 * connections; when the allowance has no room the splitter stops and says how much it waits for,
 * and its connection stops reading until the room is granted.
 */

/** Why a stream of bytes is not MQTT. */
export type FrameError =
  | { readonly _tag: "MalformedLength" }
  | { readonly _tag: "TooLarge"; readonly size: number; readonly limit: number }

/** Where the bytes of partly received packets are accounted (one for the whole broker). */
export interface FrameAllowance {
  /** Takes `bytes` if that much is free, at once; false leaves the allowance as it was. */
  readonly tryTake: (bytes: number) => boolean
  /** Gives back `bytes` taken earlier. */
  readonly give: (bytes: number) => void
}

/** An allowance without a bound (unit tests, and embedders who bound memory elsewhere). */
export const unbounded: FrameAllowance = { tryTake: () => true, give: () => {} }

/** The result of reading a header at `offset`: the frame size, "need more bytes", or an error. */
const frameSize = (bytes: Uint8Array, offset: number, limit: number): number | undefined | FrameError => {
  let length = 0
  let multiplier = 1
  for (let i = 1; i <= 4; i++) {
    if (offset + i >= bytes.length) return undefined
    const byte = bytes[offset + i]!
    length += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) {
      const size = 1 + i + length
      return size > limit ? { _tag: "TooLarge", size, limit } : size
    }
    multiplier *= 128
  }
  // at most four length bytes (MQTT 3.1.1 §2.2.3)
  return { _tag: "MalformedLength" }
}

const EMPTY = Buffer.alloc(0)

/**
 * Partly received packets up to this size are not counted against the allowance: one socket
 * read holds about as much anyway, and small packets of innocent clients never wait behind
 * large uploads.
 */
export const SMALL_FRAME = 64 * 1024

/** Splits one connection's byte stream into packets. */
export class FrameSplitter {
  private readonly maxPacketSize: number
  private readonly allowance: FrameAllowance
  /** The start of a packet whose header is not complete yet (at most 4 bytes). */
  private head: Buffer | undefined = undefined
  /** A packet being received: allocated at its full size, `filled` bytes so far. */
  private body: Buffer | undefined = undefined
  private filled = 0
  /** Bytes not yet looked at because the allowance had no room for the packet they start. */
  private stalled: Buffer | undefined = undefined
  /** Bytes taken from the allowance and not given back yet. */
  private held = 0
  /** Bytes granted ahead (by `adopt`) for the packet that stalled. */
  private granted = 0
  /** Size of the packet that stalled; 0 while not stalled. */
  waitingFor = 0

  constructor(maxPacketSize: number, allowance: FrameAllowance = unbounded) {
    this.maxPacketSize = maxPacketSize
    this.allowance = allowance
  }

  /** Takes over `bytes` granted from the allowance on this splitter's behalf (while it waits). */
  adopt(bytes: number): void {
    this.held += bytes
    this.granted += bytes
  }

  /** Gives back everything held; the splitter is not used after this. */
  dispose(): void {
    if (this.held > 0) this.allowance.give(this.held)
    this.held = 0
    this.granted = 0
    this.body = undefined
    this.stalled = undefined
  }

  /**
   * The whole packets completed by `chunk` (views into it where possible), or the framing error.
   * While `waitingFor` is non-zero nothing more is split: bytes pushed meanwhile are kept, and
   * an empty push after `adopt` carries on.
   */
  push(chunk: Buffer, frames: Array<Buffer>): FrameError | undefined {
    let bytes = chunk
    if (this.stalled !== undefined) {
      bytes = chunk.length === 0 ? this.stalled : Buffer.concat([this.stalled, chunk])
      this.stalled = undefined
      this.waitingFor = 0
    }
    let offset = 0
    if (this.body !== undefined) {
      const body = this.body
      const count = Math.min(body.length - this.filled, bytes.length)
      bytes.copy(body, this.filled, 0, count)
      this.filled += count
      offset = count
      if (this.filled < body.length) return undefined
      this.body = undefined
      if (body.length > SMALL_FRAME) this.release(body.length)
      frames.push(body)
    }
    if (this.head !== undefined) {
      bytes = Buffer.concat([this.head, offset === 0 ? bytes : bytes.subarray(offset)])
      offset = 0
      this.head = undefined
    }
    while (offset < bytes.length) {
      const size = frameSize(bytes, offset, this.maxPacketSize)
      if (typeof size === "object") return size
      if (size === undefined) {
        // copy: a view would pin the whole chunk for a few header bytes
        this.head = Buffer.from(bytes.subarray(offset))
        break
      }
      const available = bytes.length - offset
      if (size <= available) {
        frames.push(bytes.subarray(offset, offset + size))
        offset += size
        continue
      }
      if (!this.take(size)) {
        this.stalled = bytes.subarray(offset)
        this.waitingFor = size
        break
      }
      const body = Buffer.allocUnsafe(size)
      bytes.copy(body, 0, offset)
      this.body = body
      this.filled = available
      break
    }
    return undefined
  }

  /** Whether a packet larger than SMALL_FRAME is partly received. */
  get receivingLarge(): boolean {
    return this.body !== undefined && this.body.length > SMALL_FRAME
  }

  /** Whether nothing is buffered: no partial packet, header or stalled bytes. */
  get idle(): boolean {
    return this.body === undefined && this.head === undefined && this.stalled === undefined
  }

  private take(size: number): boolean {
    if (size <= SMALL_FRAME) return true
    if (this.granted >= size) {
      // granted while waiting: keep only what this packet needs
      this.allowance.give(this.granted - size)
      this.held -= this.granted - size
      this.granted = 0
      return true
    }
    if (this.granted > 0) {
      this.allowance.give(this.granted)
      this.held -= this.granted
      this.granted = 0
    }
    if (!this.allowance.tryTake(size)) return false
    this.held += size
    return true
  }

  private release(size: number): void {
    this.held -= size
    this.allowance.give(size)
  }
}

/** A zero-length chunk: pushing it after `adopt` resumes a stalled splitter. */
export const RESUME: Buffer = EMPTY
