import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import mqttPacket from "mqtt-packet"
import { makeDecoder } from "../../src/protocol/Decoder.ts"

const connect = (version: 4 | 5, clientId = "good") =>
  mqttPacket.generate(
    { cmd: "connect", protocolId: "MQTT", protocolVersion: version, clientId, clean: true, keepalive: 30, ...(version === 5 ? { properties: { sessionExpiryInterval: 10 } } : {}) },
    { protocolVersion: version }
  )

/** A frame with the given first byte around `body` (Remaining Length from its size). */
const frame = (first: number, body: Buffer): Buffer => {
  const length: Array<number> = []
  let rest = body.length
  do {
    length.push((rest & 0x7f) | (rest > 0x7f ? 0x80 : 0))
    rest >>= 7
  } while (rest > 0)
  return Buffer.concat([Buffer.from([first, ...length]), body])
}

const str = (text: string | Buffer) => {
  const bytes = typeof text === "string" ? Buffer.from(text) : text
  return Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes])
}

/** A CONNECT whose variable header and payload are given raw. */
const rawConnect = (name: string, level: number, flags: number, rest: Buffer) =>
  frame(0x10, Buffer.concat([str(name), Buffer.from([level, flags, 0, 30]), rest]))

/** Malformed CONNECTs of the classes a fuzzer found to poison a shared parser, and others. */
const poisoned: Record<string, Buffer> = {
  "protocol name hj": rawConnect("hj", 4, 2, str("x")),
  "MQTT 5 properties cut short": (() => {
    const bytes = Buffer.from(connect(5))
    bytes[12] = 30 // property length beyond the packet
    return bytes
  })(),
  "client id length overruns": rawConnect("MQTT", 4, 2, Buffer.from([0x00, 0x40, 0x61])),
  "reserved connect flag": rawConnect("MQTT", 4, 3, str("x")),
  "will flag without will": rawConnect("MQTT", 4, 0x06, str("x")),
  "password without username": rawConnect("MQTT", 4, 0x42, Buffer.concat([str("x"), str("pw")])),
  "level 9": rawConnect("MQTT", 9, 2, str("x"))
}

describe("Decoder isolation", () => {
  for (const [name, bad] of Object.entries(poisoned)) {
    it(`after a malformed CONNECT (${name}) on one connection, another connection's valid CONNECT still decodes (3.1.1 and 5)`, () => {
      const first = makeDecoder(1 << 20).decode(bad)
      expect(first.packets).toHaveLength(0)
      expect(first.error).toBeDefined()
      for (const version of [4, 5] as const) {
        const { error, packets } = makeDecoder(1 << 20).decode(connect(version))
        expect(error).toBeUndefined()
        expect(packets).toMatchObject([{ cmd: "connect", clientId: "good", protocolVersion: version }])
      }
    })
  }

  it("no bytes sent on one connection change what another connection makes of valid CONNECT, SUBSCRIBE and DISCONNECT packets", () => {
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((body) => frame(0x10, Buffer.from(body))),
      fc.uint8Array({ maxLength: 64 }).map((body) => frame(0x82, Buffer.from(body))),
      fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
      fc.tuple(fc.constantFrom(...Object.values(poisoned)), fc.nat()).map(([bytes, cut]) => bytes.subarray(0, 1 + (cut % bytes.length)))
    )
    fc.assert(
      fc.property(fc.array(garbage, { minLength: 1, maxLength: 5 }), fc.constantFrom(4 as const, 5 as const), (bad, version) => {
        for (const bytes of bad) {
          // after a CONNECT the decoder uses the per-version parser: poison that one too
          const attacker = makeDecoder(1 << 20)
          attacker.decode(connect(version, "attacker"))
          attacker.decode(bytes)
          makeDecoder(1 << 20).decode(bytes)
        }
        const decoder = makeDecoder(1 << 20)
        const subscribe = mqttPacket.generate(
          { cmd: "subscribe", messageId: 7, subscriptions: [{ topic: "a/+", qos: 1 }] },
          { protocolVersion: version }
        )
        const disconnect = mqttPacket.generate({ cmd: "disconnect" }, { protocolVersion: version })
        const { error, packets } = decoder.decode(Buffer.concat([connect(version), subscribe, disconnect]))
        expect(error).toBeUndefined()
        expect(packets.map((p) => p.cmd)).toEqual(["connect", "subscribe", "disconnect"])
        expect(packets[1]).toMatchObject({ messageId: 7, subscriptions: [{ topic: "a/+", qos: 1 }] })
      }),
      { numRuns: 300 }
    )
  })
})

describe("Decoder checks what mqtt-packet lets through", () => {
  const decode = (bytes: Buffer, after?: Buffer) => {
    const decoder = makeDecoder(1 << 20)
    if (after !== undefined) expect(decoder.decode(after).error).toBeUndefined()
    return decoder.decode(bytes)
  }

  it("ill-formed UTF-8 in a client id is a malformed packet [MQTT-1.5.3-1]", () => {
    const { error } = decode(rawConnect("MQTT", 4, 2, str(Buffer.from([0x61, 0xc3, 0x28]))))
    expect(error).toMatchObject({ _tag: "Malformed" })
  })

  it("U+0000 in a client id is a malformed packet [MQTT-1.5.3-2]", () => {
    expect(decode(rawConnect("MQTT", 4, 2, str("a\u0000b"))).error).toMatchObject({ _tag: "Malformed" })
  })

  it("a real U+FFFD in a client id is accepted", () => {
    expect(decode(rawConnect("MQTT", 4, 2, str("a\uFFFDb"))).packets).toMatchObject([{ clientId: "a\uFFFDb" }])
  })

  it("ill-formed UTF-8 in a SUBSCRIBE filter or a PUBLISH topic is malformed", () => {
    const subscribe = frame(0x82, Buffer.concat([Buffer.from([0, 1]), str(Buffer.from([0x61, 0xff])), Buffer.from([0])]))
    expect(decode(subscribe, connect(4)).error).toMatchObject({ _tag: "Malformed" })
    const publish = frame(0x30, Buffer.concat([str(Buffer.from([0xed, 0xa0, 0x80])), Buffer.from("x")]))
    expect(decode(publish, connect(4)).error).toMatchObject({ _tag: "Malformed" })
    const nul = frame(0x30, Buffer.concat([str("a\u0000"), Buffer.from("x")]))
    expect(decode(nul, connect(4)).error).toMatchObject({ _tag: "Malformed" })
  })

  it("packet identifier 0 is refused in SUBSCRIBE, PUBACK and a QoS 1 PUBLISH [MQTT-2.3.1-1]", () => {
    const subscribe = frame(0x82, Buffer.concat([Buffer.from([0, 0]), str("a"), Buffer.from([0])]))
    expect(decode(subscribe, connect(4)).error).toMatchObject({ _tag: "ProtocolError" })
    expect(decode(Buffer.from([0x40, 2, 0, 0]), connect(4)).error).toMatchObject({ _tag: "ProtocolError" })
    expect(decode(frame(0x32, Buffer.concat([str("t"), Buffer.from([0, 0])])), connect(4)).error).toMatchObject({ _tag: "Malformed" })
  })

  it("an MQTT 5 CONNECT with a property twice is a protocol error that names MQTT 5 (for CONNACK 0x82)", () => {
    const properties = Buffer.from([10, 0x11, 0, 0, 0, 5, 0x11, 0, 0, 0, 6])
    const bytes = rawConnect("MQTT", 5, 2, Buffer.concat([properties, str("x")]))
    expect(decode(bytes).error).toMatchObject({ _tag: "ProtocolError", connectVersion: 5 })
  })

  it("an MQTT 5 CONNECT cut short is malformed and names MQTT 5 (for CONNACK 0x81)", () => {
    expect(decode(poisoned["MQTT 5 properties cut short"]!).error).toMatchObject({ _tag: "Malformed", connectVersion: 5 })
  })

  it("MQTT 5 PUBLISH: a property twice, a Subscription Identifier from a client, a bad payload format are refused", () => {
    const publish = (properties: Array<number>) =>
      frame(0x30, Buffer.concat([str("t"), Buffer.from([properties.length, ...properties]), Buffer.from("x")]))
    expect(decode(publish([0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]), connect(5)).error).toMatchObject({ _tag: "Malformed" })
    expect(decode(publish([0x23, 0, 1, 0x23, 0, 2]), connect(5)).error).toMatchObject({ _tag: "Malformed" })
    expect(decode(publish([0x0b, 1]), connect(5)).error).toMatchObject({ _tag: "Malformed" })
    expect(decode(publish([0x01, 2]), connect(5)).error).toMatchObject({ _tag: "Malformed" })
    expect(decode(publish([0x26, 0, 1, 0x61, 0, 1, 0x62, 0x26, 0, 1, 0x61, 0, 1, 0x63]), connect(5)).packets).toHaveLength(1)
  })

  it("an MQTT 5 SUBSCRIBE with a property not allowed in it is a protocol error", () => {
    const subscribe = frame(0x82, Buffer.concat([Buffer.from([0, 1, 2, 0x23, 0, 1]), str("a"), Buffer.from([0])]))
    expect(decode(subscribe, connect(5)).error).toMatchObject({ _tag: "ProtocolError" })
  })

  it("CONNECT flag rules mqtt-packet does not check: will QoS 3, will bits without a will, bytes after the payload, MQIsdp at level 4 [MQTT-3.1.2-1, -13, -14, MQTT-3.1.4-1]", () => {
    const willQos3 = rawConnect("MQTT", 4, 0x1e, Buffer.concat([str("x"), str("w/t"), str("p")]))
    expect(decode(willQos3).error).toMatchObject({ _tag: "Malformed", message: "will QoS 3" })
    expect(decode(rawConnect("MQTT", 4, 0x0a, str("x"))).error).toMatchObject({ _tag: "Malformed" })
    expect(decode(rawConnect("MQTT", 4, 0x22, str("x"))).error).toMatchObject({ _tag: "Malformed" })
    expect(decode(rawConnect("MQTT", 4, 0x02, Buffer.concat([str("x"), Buffer.from([1])]))).error).toMatchObject({ message: "bytes after the CONNECT payload" })
    expect(decode(rawConnect("MQIsdp", 4, 0x02, str("x"))).error).toMatchObject({ _tag: "Malformed" })
    const full = rawConnect("MQTT", 4, 0xee, Buffer.concat([str("x"), str("w/t"), str("p"), str("user"), str("pw")]))
    expect(decode(full).packets).toMatchObject([{ clientId: "x", username: "user", will: { topic: "w/t", qos: 1, retain: true } }])
    const v5 = rawConnect("MQTT", 5, 0x06, Buffer.concat([Buffer.from([0]), str("x"), Buffer.from([5, 0x11, 0, 0, 0, 1]), str("w"), str("p")]))
    expect(decode(v5).error).toMatchObject({ _tag: "ProtocolError", connectVersion: 5 })
  })

  it("SUBSCRIBE and UNSUBSCRIBE without a topic filter are protocol errors [MQTT-3.8.3-3, MQTT-3.10.3-2]", () => {
    expect(decode(frame(0x82, Buffer.from([0, 1])), connect(4)).error).toMatchObject({ _tag: "ProtocolError" })
    expect(decode(frame(0xa2, Buffer.from([0, 1])), connect(4)).error).toMatchObject({ _tag: "ProtocolError" })
    expect(decode(frame(0x82, Buffer.from([0, 1, 0])), connect(5)).error).toMatchObject({ _tag: "ProtocolError" })
  })

  it("a protocol level it does not speak is reported as such (for CONNACK 1)", () => {
    expect(decode(poisoned["level 9"]!).error).toEqual({ _tag: "UnsupportedProtocolVersion" })
  })
})

describe("PUBLISH payloads", () => {
  it("a small payload is copied out of the read buffer; a large packet's payload is kept where it was received, not copied again", () => {
    const decoder = makeDecoder(1 << 26)
    expect(decoder.decode(connect(4)).error).toBeUndefined()
    const small = frame(0x30, Buffer.concat([str("t"), Buffer.from("tiny")]))
    const chunk = Buffer.concat([small, Buffer.alloc(60_000)]) // a read that holds more than the packet
    const [first] = decoder.decode(chunk.subarray(0, small.length)).packets as ReadonlyArray<{ payload: Buffer }>
    expect(first!.payload.toString()).toBe("tiny")
    expect(first!.payload.buffer).not.toBe(chunk.buffer)
    const big = frame(0x30, Buffer.concat([str("t"), Buffer.alloc(5_000_000, 7)]))
    const packets: Array<{ payload: Buffer }> = []
    for (let i = 0; i < big.length; i += 65_536) packets.push(...(decoder.decode(Buffer.from(big.subarray(i, i + 65_536))).packets as ReadonlyArray<{ payload: Buffer }>))
    expect(packets).toHaveLength(1)
    expect(packets[0]!.payload.length).toBe(5_000_000)
    expect(packets[0]!.payload.buffer.byteLength).toBe(big.length)
  })
})
