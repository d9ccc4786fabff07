import { describe, expect, it } from "@effect/vitest"
import mqttPacket from "mqtt-packet"
import * as Codec from "../../src/protocol/Codec.ts"
import type { Message } from "../../src/session/Message.ts"

const parseOne = (bytes: Buffer) => {
  const decoder = Codec.makeDecoder(1 << 20)
  const { error, packets } = decoder.decode(bytes)
  expect(error).toBeUndefined()
  expect(packets).toHaveLength(1)
  return packets[0]!
}

describe("Codec", () => {
  it("decodes packets split at every byte boundary", () => {
    const bytes = Buffer.concat([
      mqttPacket.generate({ cmd: "publish", topic: "a/b", payload: Buffer.alloc(300, 1), qos: 1, messageId: 5, dup: false, retain: false }),
      mqttPacket.generate({ cmd: "pingreq" })
    ])
    const decoder = Codec.makeDecoder(1 << 20)
    const seen: Array<string> = []
    for (let i = 0; i < bytes.length; i++) {
      const { error, packets } = decoder.decode(bytes.subarray(i, i + 1))
      expect(error).toBeUndefined()
      for (const packet of packets) seen.push(packet.cmd)
    }
    expect(seen).toEqual(["publish", "pingreq"])
  })

  it("refuses a packet larger than the limit from its header alone", () => {
    const decoder = Codec.makeDecoder(100)
    const header = Buffer.from([0x30, 0xc8, 0x01]) // PUBLISH, remaining length 200
    expect(decoder.decode(header).error).toEqual({ _tag: "TooLarge", size: 203, limit: 100 })
  })

  it("refuses a remaining length of more than four bytes", () => {
    const decoder = Codec.makeDecoder(1 << 28)
    expect(decoder.decode(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])).error).toEqual({ _tag: "MalformedLength" })
  })

  it("reports a malformed packet (reserved type 15)", () => {
    const decoder = Codec.makeDecoder(1 << 20)
    expect(decoder.decode(Buffer.from([0xf0, 0x00])).error?._tag).toBe("Malformed")
  })

  it("encodes a PUBLISH once and patches packet id and DUP per subscriber", () => {
    const message: Message = { topic: "x/y", payload: Buffer.from("hi"), qos: 2, retain: true }
    const first = parseOne(Codec.encodePublish(message, 513, false))
    const second = parseOne(Codec.encodePublish(message, 7, true))
    expect(first).toMatchObject({ cmd: "publish", topic: "x/y", qos: 2, retain: true, dup: false, messageId: 513 })
    expect(second).toMatchObject({ cmd: "publish", topic: "x/y", qos: 2, dup: true, messageId: 7 })
    expect((second as { payload: Buffer }).payload.toString()).toBe("hi")
  })

  it("QoS 0 publishes share the same bytes", () => {
    const message: Message = { topic: "z", payload: Buffer.from("p"), qos: 0, retain: false }
    expect(Codec.encodePublish(message, undefined, false)).toBe(Codec.encodePublish(message, undefined, false))
  })

  it("encodes the four-byte acks", () => {
    expect(parseOne(Codec.encodeAck("pubrel", 258))).toMatchObject({ cmd: "pubrel", messageId: 258 })
    expect(parseOne(Codec.encodeAck("puback", 1))).toMatchObject({ cmd: "puback", messageId: 1 })
  })
})
