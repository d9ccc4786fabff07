import { describe, expect, it, vi } from "@effect/vitest"
import * as fc from "fast-check"
import { type FrameAllowance, FrameSplitter, RESUME, SMALL_FRAME } from "../../src/protocol/Frame.ts"

/** A PUBLISH-typed frame of `size` bytes whose body is a recognisable pattern. */
const frameOf = (size: number, seed = 1): Buffer => {
  const body = size - 5
  const frame = Buffer.alloc(size)
  frame[0] = 0x30
  let length = body
  for (let i = 1; i <= 4; i++) {
    frame[i] = (length & 0x7f) | (i < 4 ? 0x80 : 0)
    length >>= 7
  }
  for (let i = 5; i < size; i++) frame[i] = (i * seed) & 0xff
  return frame
}

/** An allowance that counts what is taken, with a bound. */
const countingAllowance = (limit: number) => {
  let taken = 0
  const allowance: FrameAllowance = {
    tryTake: (bytes) => {
      if (taken + bytes > limit) return false
      taken += bytes
      return true
    },
    give: (bytes) => {
      taken -= bytes
    }
  }
  return { allowance, taken: () => taken }
}

const chunksOf = (bytes: Buffer, size: number): Array<Buffer> => {
  const chunks: Array<Buffer> = []
  for (let i = 0; i < bytes.length; i += size) chunks.push(Buffer.from(bytes.subarray(i, i + size)))
  return chunks
}

describe("FrameSplitter", () => {
  it("receives a 16 MB packet streamed in 64 KB reads without ever re-concatenating what it holds (linear, not quadratic)", () => {
    const frame = frameOf(16 * 1024 * 1024)
    const splitter = new FrameSplitter(32 * 1024 * 1024)
    const frames: Array<Buffer> = []
    const concat = vi.spyOn(Buffer, "concat")
    try {
      for (const chunk of chunksOf(frame, 64 * 1024)) expect(splitter.push(chunk, frames)).toBeUndefined()
      expect(concat).not.toHaveBeenCalled()
    } finally {
      concat.mockRestore()
    }
    expect(frames).toHaveLength(1)
    expect(frames[0]!.equals(frame)).toBe(true)
    expect(splitter.idle).toBe(true)
  })

  it("any chunking of a stream of packets yields the same frames, byte for byte", () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 5, max: 3 * SMALL_FRAME }), { minLength: 1, maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 20 }),
      (sizes, cuts) => {
        const packets = sizes.map((size, i) => frameOf(size, i + 3))
        const stream = Buffer.concat(packets)
        const splitter = new FrameSplitter(1 << 24)
        const frames: Array<Buffer> = []
        let offset = 0
        let cut = 0
        while (offset < stream.length) {
          const size = cuts[cut++ % cuts.length]!
          expect(splitter.push(stream.subarray(offset, offset + size), frames)).toBeUndefined()
          offset += size
        }
        expect(frames.map((f) => f.toString("hex"))).toEqual(packets.map((p) => p.toString("hex")))
        expect(splitter.idle).toBe(true)
      }
    ), { numRuns: 60 })
  })

  it("a large packet that does not fit the shared allowance waits, then completes once room is adopted; the allowance is whole again after", () => {
    const { allowance, taken } = countingAllowance(1_000_000)
    const first = new FrameSplitter(1 << 24, allowance)
    const second = new FrameSplitter(1 << 24, allowance)
    const a = frameOf(600_000, 2)
    const b = frameOf(600_000, 5)
    const framesA: Array<Buffer> = []
    const framesB: Array<Buffer> = []
    first.push(a.subarray(0, 1000), framesA)
    expect(taken()).toBe(600_000)
    second.push(b.subarray(0, 1000), framesB)
    expect(second.waitingFor).toBe(600_000)
    // bytes arriving while it waits are kept, not split
    second.push(b.subarray(1000, 2000), framesB)
    expect(framesB).toHaveLength(0)
    first.push(a.subarray(1000), framesA)
    expect(framesA).toHaveLength(1)
    expect(taken()).toBe(0)
    expect(allowance.tryTake(600_000)).toBe(true)
    second.adopt(600_000)
    second.push(RESUME, framesB)
    expect(second.waitingFor).toBe(0)
    second.push(b.subarray(2000), framesB)
    expect(framesB).toHaveLength(1)
    expect(framesB[0]!.equals(b)).toBe(true)
    expect(taken()).toBe(0)
  })

  it("packets up to SMALL_FRAME never wait for the allowance, even when it is exhausted", () => {
    const { allowance } = countingAllowance(0)
    const splitter = new FrameSplitter(1 << 24, allowance)
    const frame = frameOf(SMALL_FRAME)
    const frames: Array<Buffer> = []
    splitter.push(frame.subarray(0, 10), frames)
    expect(splitter.waitingFor).toBe(0)
    splitter.push(frame.subarray(10), frames)
    expect(frames).toHaveLength(1)
  })

  it("dispose gives back what a half-received packet holds", () => {
    const { allowance, taken } = countingAllowance(10_000_000)
    const splitter = new FrameSplitter(1 << 24, allowance)
    splitter.push(frameOf(5_000_000).subarray(0, 100), [])
    expect(taken()).toBe(5_000_000)
    splitter.dispose()
    expect(taken()).toBe(0)
  })

  it("refuses an oversized packet from its header, before any body byte is held", () => {
    const { allowance, taken } = countingAllowance(1 << 30)
    const splitter = new FrameSplitter(1_000_000, allowance)
    expect(splitter.push(frameOf(2_000_000).subarray(0, 5), [])).toEqual({ _tag: "TooLarge", size: 2_000_000, limit: 1_000_000 })
    expect(taken()).toBe(0)
  })
})
