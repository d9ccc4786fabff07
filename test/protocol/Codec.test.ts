import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import mqttPacket from "mqtt-packet"
import * as Codec from "../../src/protocol/Codec.ts"
import { readUserProperties } from "../../src/protocol/Publish.ts"
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

  it("interleaved messages (releases from several session queues) each get their own bytes; bytes handed out never change afterwards", () => {
    const a: Message = { topic: "a", payload: Buffer.from("A"), qos: 1, retain: false }
    const b: Message = { topic: "bb", payload: Buffer.from("B"), qos: 1, retain: false }
    const a1 = Codec.encodePublish(a, 1, false)
    const b2 = Codec.encodePublish(b, 2, false)
    const a3 = Codec.encodePublish(a, 3, true)
    const a4 = Codec.encodePublish(a, 4, false)
    const before = [a1, b2, a3, a4].map((bytes) => Buffer.from(bytes))
    Codec.encodePublish(b, 5, true)
    expect([a1, b2, a3, a4], "earlier packets untouched by later encodes").toEqual(before)
    expect([a1, b2, a3, a4].map((bytes) => parseOne(bytes))).toMatchObject([
      { topic: "a", messageId: 1, dup: false },
      { topic: "bb", messageId: 2, dup: false },
      { topic: "a", messageId: 3, dup: true },
      { topic: "a", messageId: 4, dup: false }
    ])
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

describe("PUBLISH encoding (MQTT 5)", () => {
  const parse5 = (bytes: Buffer) => {
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    const packets: Array<mqttPacket.Packet> = []
    parser.on("packet", (packet) => packets.push(packet))
    parser.on("error", (error: Error) => {
      throw error
    })
    parser.parse(bytes)
    expect(packets).toHaveLength(1)
    return packets[0] as mqttPacket.IPublishPacket
  }

  it("writes every forwarded property, subscription ids and an alias, and mqtt-packet reads them back", () => {
    const message: Message = {
      topic: "a/b",
      payload: Buffer.from("é"),
      qos: 1,
      retain: false,
      properties: {
        payloadFormatIndicator: true,
        contentType: "text/plain",
        responseTopic: "reply/here",
        correlationData: Buffer.from([1, 2, 3]),
        userProperties: [["k", "v1"], ["other", "x"], ["k", "v2"]]
      },
      expiresAt: 10_500,
      subscriptionIds: [7, 300]
    }
    const packet = parse5(Codec.encodePublish(message, 42, true, 5, { topicAlias: 3, now: 1_000 }))
    expect(packet).toMatchObject({ topic: "a/b", qos: 1, dup: true, messageId: 42 })
    expect(packet.payload.toString()).toBe("é")
    expect(packet.properties).toMatchObject({
      payloadFormatIndicator: true,
      contentType: "text/plain",
      responseTopic: "reply/here",
      messageExpiryInterval: 10,
      topicAlias: 3,
      subscriptionIdentifier: [7, 300],
      userProperties: { k: ["v1", "v2"], other: "x" }
    })
    expect(packet.properties?.correlationData).toEqual(Buffer.from([1, 2, 3]))
  })

  it("keeps user properties in wire order through a decode and a re-encode", () => {
    const userProperties = [["b", "1"], ["a", "2"], ["b", "3"]] as const
    const bytes = mqttPacket.generate(
      { cmd: "publish", topic: "t", payload: Buffer.from("p"), qos: 0, dup: false, retain: false, properties: { userProperties: { b: ["1", "3"], a: "2" } } },
      { protocolVersion: 5 }
    )
    // mqtt-packet writes grouped names; the broker's own encoder writes the order it was given
    const ordered = Codec.encodePublish({ topic: "t", payload: Buffer.from("p"), qos: 0, retain: false, properties: { userProperties } }, undefined, false, 5)
    expect(readUserProperties(ordered)).toEqual(userProperties)
    expect(readUserProperties(bytes)).toEqual([["b", "1"], ["b", "3"], ["a", "2"]])
  })

  it("an alias-only PUBLISH has an empty topic and the packet id still patched in the right place", () => {
    const message: Message = { topic: "long/topic/name", payload: Buffer.from("x"), qos: 2, retain: false, subscriptionIds: [1] }
    const packet = parse5(Codec.encodePublish(message, 513, false, 5, { topicAlias: 9, aliasOnly: true }))
    expect(packet).toMatchObject({ topic: "", messageId: 513, qos: 2 })
    expect(packet.properties?.topicAlias).toBe(9)
  })

  it("3.1.1 subscribers get no properties", () => {
    const message: Message = { topic: "t", payload: Buffer.from("p"), qos: 1, retain: false, properties: { contentType: "c" } }
    const bytes = Codec.encodePublish(message, 5, false, 4)
    expect(bytes).toEqual(mqttPacket.generate({ cmd: "publish", topic: "t", payload: Buffer.from("p"), qos: 1, messageId: 5, dup: false, retain: false }))
  })

  it("encodePublish: mqtt-packet reads back the topic, packet id, expiry, alias and user properties given, for any Unicode text and 16/32-bit value", () => {
    const parse = (bytes: Buffer) => {
      const packets: Array<mqttPacket.IPublishPacket> = []
      const parser = mqttPacket.parser({ protocolVersion: 5 })
      parser.on("packet", (packet) => packets.push(packet as mqttPacket.IPublishPacket))
      parser.on("error", (error: Error) => {
        throw error
      })
      parser.parse(bytes)
      return packets
    }
    // any grapheme, and often one of one byte past ASCII, two, three or four bytes in UTF-8
    const text = fc.string({ unit: fc.oneof(fc.constantFrom("\u00e9", "\u00ff", "\u20ac", "\u{1F600}"), fc.constantFrom("a", "/", "+"), fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 })), maxLength: 40 })
    fc.assert(
      fc.property(
        text.filter((topic) => topic.length > 0 && !topic.includes("\u0000")),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 1, max: 4294967295 }),
        fc.integer({ min: 1, max: 65535 }),
        fc.array(fc.tuple(text, text), { maxLength: 3 }),
        (topic, packetId, expirySeconds, topicAlias, userProperties) => {
          const message: Message = {
            topic,
            payload: Buffer.from("p"),
            qos: 1,
            retain: false,
            expiresAt: expirySeconds * 1000,
            ...(userProperties.length > 0 ? { properties: { userProperties } } : {})
          }
          const packets = parse(Codec.encodePublish(message, packetId, false, 5, { topicAlias, now: 0 }))
          expect(packets).toHaveLength(1)
          const packet = packets[0]!
          expect(packet.topic).toBe(topic)
          expect(packet.messageId).toBe(packetId)
          expect(packet.properties?.messageExpiryInterval).toBe(expirySeconds)
          expect(packet.properties?.topicAlias).toBe(topicAlias)
          if (userProperties.length > 0) expect(readUserProperties(Codec.encodePublish(message, packetId, false, 5))).toEqual(userProperties)
          // the same in the 3.1.1 framing
          expect(parseOne(Codec.encodePublish(message, packetId, false, 4))).toMatchObject({ cmd: "publish", topic, messageId: packetId })
        }
      )
    )
  })
})
