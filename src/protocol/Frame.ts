/**
 * Fixed-header framing: tracks packet boundaries across TCP chunks so an oversized
 * or malformed Remaining Length is refused before a single body byte is buffered.
 * The body itself is parsed by mqtt-packet; this only reads headers and skips bodies.
 */

/** Why a stream of bytes is not MQTT. */
export type FrameError =
  | { readonly _tag: "MalformedLength" }
  | { readonly _tag: "TooLarge"; readonly size: number; readonly limit: number }

/** A stateful scanner over one connection's inbound bytes. */
export class FrameScanner {
  private readonly maxPacketSize: number
  /** Body bytes of the current packet still to skip. */
  private remaining = 0
  /** Header bytes seen so far of a header split across chunks (0 = at a packet boundary). */
  private headerBytes = 0
  private length = 0
  private multiplier = 1

  constructor(maxPacketSize: number) {
    this.maxPacketSize = maxPacketSize
  }

  /** Scans a chunk; returns an error as soon as one header is invalid. */
  scan(chunk: Uint8Array): FrameError | undefined {
    let i = 0
    const n = chunk.length
    while (i < n) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, n - i)
        this.remaining -= skip
        i += skip
        continue
      }
      if (this.headerBytes === 0) {
        // the packet type byte
        this.headerBytes = 1
        this.length = 0
        this.multiplier = 1
        i++
        continue
      }
      const byte = chunk[i++]!
      this.length += (byte & 0x7f) * this.multiplier
      this.multiplier *= 128
      this.headerBytes++
      if (byte & 0x80) {
        // at most four length bytes (MQTT 3.1.1 §2.2.3)
        if (this.headerBytes > 4) return { _tag: "MalformedLength" }
        continue
      }
      const size = this.headerBytes + this.length
      if (size > this.maxPacketSize) return { _tag: "TooLarge", size, limit: this.maxPacketSize }
      this.remaining = this.length
      this.headerBytes = 0
    }
    return undefined
  }
}
