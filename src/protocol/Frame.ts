/**
 * Fixed-header framing: splits a connection's inbound bytes into whole MQTT packets, so each
 * packet's bytes are known (MQTT 5 user properties are re-read from them in wire order) and an
 * oversized or malformed Remaining Length is refused from the header, before the body arrives.
 */

/** Why a stream of bytes is not MQTT. */
export type FrameError =
  | { readonly _tag: "MalformedLength" }
  | { readonly _tag: "TooLarge"; readonly size: number; readonly limit: number }

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

/** Splits one connection's byte stream into packets. */
export class FrameSplitter {
  private readonly maxPacketSize: number
  /** Bytes of an incomplete packet carried over to the next chunk. */
  private pending: Buffer | undefined = undefined

  constructor(maxPacketSize: number) {
    this.maxPacketSize = maxPacketSize
  }

  /** The whole packets completed by `chunk` (views into it where possible), or the framing error. */
  push(chunk: Buffer, frames: Array<Buffer>): FrameError | undefined {
    let bytes = chunk
    if (this.pending !== undefined) {
      bytes = Buffer.concat([this.pending, chunk])
      this.pending = undefined
    }
    let offset = 0
    while (offset < bytes.length) {
      const size = frameSize(bytes, offset, this.maxPacketSize)
      if (typeof size === "object") return size
      if (size === undefined || offset + size > bytes.length) break
      frames.push(bytes.subarray(offset, offset + size))
      offset += size
    }
    // copy the tail: holding a view would pin the whole chunk while a large packet trickles in
    if (offset < bytes.length) this.pending = Buffer.from(bytes.subarray(offset))
    return undefined
  }
}
