/**
 * The fuzz suite checks itself: the valid packets Wire builds are what mqtt-packet reads them as
 * (so a hostile case differs from a valid one only where it means to), Wire reads the broker's
 * packets as mqtt-packet writes them, and an answer outside the allowed ones is refused.
 */
import { describe, expect, it } from "@effect/vitest"
import mqttPacket from "mqtt-packet"
import type { Packet } from "mqtt-packet"
import { closes, connack, disconnect, isAllowed, type Observation, packetOf, staysUp } from "./Answers.ts"
import * as Wire from "./Wire.ts"

const parse = (bytes: Buffer, protocolVersion: number): Packet => {
  const parser = mqttPacket.parser({ protocolVersion })
  let packet: Packet | undefined
  let error: Error | undefined
  parser.on("packet", (p: Packet) => {
    packet = p
  })
  parser.on("error", (e: Error) => {
    error = e
  })
  parser.parse(bytes)
  if (error !== undefined) throw error
  if (packet === undefined) throw new Error("incomplete packet")
  return packet
}

describe("fuzz suite self-test", () => {
  it("valid packets built by hand read back as mqtt-packet reads them (3.1.1 and 5.0)", () => {
    for (const version of [4, 5] as const) {
      expect(parse(Wire.connect({ version, clientId: "abc", keepalive: 30, will: { topic: "w/t", payload: Buffer.from("bye"), qos: 1, retain: true } }), version))
        .toMatchObject({ cmd: "connect", protocolVersion: version, clientId: "abc", keepalive: 30, clean: true, will: { topic: "w/t", qos: 1, retain: true } })
      expect(parse(Wire.publish({ version, topic: "a/b", qos: 1, packetId: 9, payload: Buffer.from("x") }), version))
        .toMatchObject({ cmd: "publish", topic: "a/b", qos: 1, messageId: 9 })
      expect(parse(Wire.publish({ version, topic: "a/b", qos: 0, payload: Buffer.from("x") }), version))
        .toMatchObject({ cmd: "publish", topic: "a/b", qos: 0 })
      expect(parse(Wire.subscribe(version, 3, [{ filter: "a/+", options: 2 }]), version))
        .toMatchObject({ cmd: "subscribe", messageId: 3, subscriptions: [{ topic: "a/+", qos: 2 }] })
      expect(parse(Wire.unsubscribe(version, 4, ["a/#"]), version)).toMatchObject({ cmd: "unsubscribe", messageId: 4, unsubscriptions: ["a/#"] })
    }
    expect(parse(Wire.connect({ version: 5, clientId: "p", properties: [Wire.prop.u32(Wire.PropId.SessionExpiryInterval, 60)] }), 5))
      .toMatchObject({ properties: { sessionExpiryInterval: 60 } })
    expect(parse(Wire.connect({ version: 3, clientId: "old" }), 3)).toMatchObject({ protocolId: "MQIsdp", protocolVersion: 3 })
  })

  it("server packets written by mqtt-packet are read back with their codes", () => {
    const frames = new Wire.ServerFrames(5)
    const bytes = Buffer.concat([
      mqttPacket.generate({ cmd: "connack", reasonCode: 0x85, sessionPresent: false }, { protocolVersion: 5 }),
      mqttPacket.generate({ cmd: "suback", messageId: 7, granted: [1, 0x8f] }, { protocolVersion: 5 }),
      mqttPacket.generate({ cmd: "disconnect", reasonCode: 0x94, properties: { reasonString: "x" } }, { protocolVersion: 5 })
    ])
    // fed in two pieces: frames split across chunks must still decode
    const packets = [...frames.push(bytes.subarray(0, 5)), ...frames.push(bytes.subarray(5))]
    expect(packets.map(Wire.describePacket)).toEqual(["CONNACK(0x85, v5 form)", "SUBACK[0x01,0x8f]", "DISCONNECT(0x94)"])
    expect(new Wire.ServerFrames(4).push(Buffer.from([0x20, 0x02, 0x00, 0x01]))[0]).toMatchObject({ code: 1, form: 3 })
    const bad = new Wire.ServerFrames(4)
    bad.push(Buffer.from([0x10, 0x00]))
    expect(bad.error).toMatch(/never sends CONNECT/)
  })

  it("an answer outside the allowed ones is a deviation", () => {
    const observed = (o: Partial<Observation>): Observation => ({ packets: [], closed: false, stayedUp: false, waitedMs: 1500, ...o })
    const frame = (bytes: Array<number>) => new Wire.ServerFrames(5).push(Buffer.from(bytes))
    const expectation = { clause: "test", allowed: [closes(disconnect([0x81]))] }
    expect(isAllowed(expectation, observed({ packets: frame([0xe0, 0x01, 0x81]), closed: true }))).toBe(true)
    expect(isAllowed(expectation, observed({ packets: frame([0xe0, 0x01, 0x82]), closed: true }))).toBe(false)
    expect(isAllowed(expectation, observed({ packets: frame([0xe0, 0x01, 0x81]) }))).toBe(false)
    expect(isAllowed(expectation, observed({ closed: true }))).toBe(false)
    expect(isAllowed({ clause: "t", allowed: [closes(connack([1], 3))] }, observed({ packets: frame([0x20, 0x03, 0x00, 0x01, 0x00]), closed: true }))).toBe(false)
    const up = { clause: "t", allowed: [staysUp(packetOf("PUBCOMP", 7))] }
    expect(isAllowed(up, observed({ packets: frame([0x70, 0x02, 0x00, 0x05, 0xd0, 0x00]), stayedUp: true }))).toBe(true)
    expect(isAllowed(up, observed({ packets: frame([0x70, 0x02, 0x00, 0x05]), closed: true }))).toBe(false)
    expect(isAllowed(expectation, observed({ setupError: "no CONNACK", closed: true }))).toBe(false)
  })
})
