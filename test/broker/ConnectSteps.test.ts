/**
 * The CONNECT steps that need no broker: `validate` (protocol level, authentication method,
 * client id, will) and the one table mapping every refusal to its CONNACK.
 */
import { describe, expect, it } from "@effect/vitest"
import mqttPacket from "mqtt-packet"
import { AuthenticationRefused, BadCredentials, NotAuthorized } from "../../src/auth/Authenticator.ts"
import * as ConnectRefusal from "../../src/broker/ConnectRefusal.ts"
import { refusalConnack, serverKeepAliveFor, validate } from "../../src/broker/handlers/connect.ts"
import * as BrokerConfig from "../../src/config/BrokerConfig.ts"
import type { ConnectPacket } from "../../src/protocol/Packet.ts"
import { ConnackCode, ReasonCode } from "../../src/protocol/ReasonCode.ts"

const config = BrokerConfig.make({ maxClientIdLength: 30, maxPayloadSize: 10, maximumQos: 1, retainAvailable: false })

const connect = (fields: Partial<ConnectPacket>): ConnectPacket => ({
  cmd: "connect",
  protocolId: "MQTT",
  protocolVersion: 4,
  clientId: "c",
  clean: true,
  keepalive: 0,
  ...fields
})

type Will = NonNullable<ConnectPacket["will"]>

const will = (fields: Partial<Will>): Will => ({
  topic: "w",
  payload: Buffer.from("x"),
  qos: 0,
  retain: false,
  ...fields
})

/** The CONNACK a refusal gets, decoded (undefined: none). */
const answer = (reason: ConnectRefusal.ConnectRefusalReason, version: number) => {
  const bytes = refusalConnack(reason, version)
  if (bytes === undefined) return undefined
  const parser = mqttPacket.parser({ protocolVersion: version === 5 ? 5 : 4 })
  let packet: mqttPacket.Packet | undefined
  parser.on("packet", (p) => (packet = p))
  parser.parse(bytes)
  return packet as mqttPacket.IConnackPacket
}

describe("CONNECT: validate", () => {
  it("accepts a plain CONNECT and keeps its client id", () => {
    expect(validate(connect({ clientId: "sensor-1" }), config)).toEqual({ version: 4, clientId: "sensor-1", assigned: false, will: undefined })
  })

  it("assigns a client id to an empty one where the spec allows it, and refuses it where not", () => {
    const v5 = validate(connect({ clientId: "", protocolVersion: 5 }), config)
    expect(v5).toMatchObject({ assigned: true, clientId: expect.stringMatching(/^auto-/) })
    expect(validate(connect({ clientId: "", clean: false }), config)).toMatchObject({ _tag: "ClientIdRejected", detail: "empty client id with clean=0" })
    expect(validate(connect({ clientId: "", protocolVersion: 3, protocolId: "MQIsdp" }), config)).toMatchObject({ _tag: "ClientIdRejected" })
  })

  it("refuses a client id over the configured length, and over 23 characters in MQTT 3.1", () => {
    expect(validate(connect({ clientId: "x".repeat(31) }), config)).toMatchObject({ _tag: "ClientIdRejected" })
    expect(validate(connect({ clientId: "x".repeat(24), protocolVersion: 3, protocolId: "MQIsdp" }), config)).toMatchObject({ _tag: "ClientIdRejected" })
    expect(validate(connect({ clientId: "x".repeat(24) }), config)).toMatchObject({ clientId: "x".repeat(24) })
  })

  it("refuses an unsupported protocol level and MQTT 5 enhanced authentication, before looking at the client id", () => {
    expect(validate(connect({ protocolVersion: 6 as 5, clientId: "" }), config)).toEqual({ _tag: "UnsupportedProtocolLevel", level: 6 })
    expect(validate(connect({ protocolVersion: 5, properties: { authenticationMethod: "SCRAM" } }), config))
      .toEqual({ _tag: "BadAuthenticationMethod", method: "SCRAM" })
  })

  it("turns a will into the message it will be, or refuses it with the reason code that says why", () => {
    const ok = validate(connect({ will: will({ topic: "last/words", qos: 1 }) }), config)
    expect(ok).toMatchObject({ will: { topic: "last/words", qos: 1, retain: false } })
    const code = (w: Will) => (validate(connect({ will: w }), config) as ConnectRefusal.WillRefused).code
    expect(code(will({ topic: "a/+" }))).toBe(ReasonCode.TopicNameInvalid)
    expect(code(will({ payload: Buffer.alloc(11) }))).toBe(ReasonCode.PacketTooLarge)
    expect(code(will({ qos: 2 }))).toBe(ReasonCode.QosNotSupported)
    expect(code(will({ retain: true }))).toBe(ReasonCode.RetainNotSupported)
  })

  it("serverKeepAlive: only MQTT 5 clients are told the broker's limit, when they asked for none or more", () => {
    expect(serverKeepAliveFor(5, 0, 60)).toBe(60)
    expect(serverKeepAliveFor(5, 120, 60)).toBe(60)
    expect(serverKeepAliveFor(5, 30, 60)).toBeUndefined()
    expect(serverKeepAliveFor(4, 120, 60)).toBeUndefined()
    expect(serverKeepAliveFor(5, 120, 0)).toBeUndefined()
  })
})

describe("CONNECT: every refusal is answered from one table", () => {
  const cases: ReadonlyArray<readonly [ConnectRefusal.ConnectRefusalReason, number | undefined, number]> = [
    [{ _tag: "RateExceeded", address: "10.0.0.1", limit: 2, report: undefined }, undefined, 0x9f],
    [{ _tag: "BadAuthenticationMethod", method: "SCRAM" }, ConnackCode.NotAuthorized, 0x8c],
    [{ _tag: "ClientIdRejected", detail: "x" }, ConnackCode.IdentifierRejected, 0x85],
    [{ _tag: "ServerFull", limit: 1, clientId: "c" }, ConnackCode.ServerUnavailable, 0x97],
    [{ _tag: "WillRefused", detail: "x", code: ReasonCode.QosNotSupported }, ConnackCode.ServerUnavailable, 0x9b],
    [{ _tag: "WillRefused", detail: "x", code: ReasonCode.TopicNameInvalid }, undefined, 0x90],
    [{ _tag: "NoCertificateName", clientId: "c" }, ConnackCode.NotAuthorized, 0x87],
    [{ _tag: "WillNotAuthorized", topic: "t", clientId: "c" }, ConnackCode.NotAuthorized, 0x87],
    [
      { _tag: "NotAuthenticated", refused: new AuthenticationRefused({ reason: new BadCredentials() }), username: "u", clientId: "c" },
      ConnackCode.BadUsernameOrPassword,
      0x86
    ],
    [
      { _tag: "NotAuthenticated", refused: new AuthenticationRefused({ reason: new NotAuthorized() }), username: undefined, clientId: "c" },
      ConnackCode.NotAuthorized,
      0x87
    ]
  ]
  for (const [reason, v3, v5] of cases) {
    it(`${reason._tag}${"code" in reason ? ` 0x${reason.code.toString(16)}` : ""}: 3.1.1 ${v3 ?? "closed without CONNACK"}, MQTT 5 0x${v5.toString(16)}`, () => {
      expect(ConnectRefusal.codesFor(reason)).toEqual({ v3, v5 })
      expect(answer(reason, 4)?.returnCode).toBe(v3)
      expect(answer(reason, 5)).toMatchObject({ cmd: "connack", reasonCode: v5, sessionPresent: false })
    })
  }

  it("an unsupported protocol level is answered with 3.1.1's return code 1 whatever the client claimed", () => {
    const reason: ConnectRefusal.ConnectRefusalReason = { _tag: "UnsupportedProtocolLevel", level: 6 }
    // CONNACK, remaining length 2, no session present, return code 1
    expect([...refusalConnack(reason, 6)!]).toEqual([0x20, 2, 0, ConnackCode.UnacceptableProtocolVersion])
    expect([...refusalConnack(reason, 5)!]).toEqual([0x20, 2, 0, ConnackCode.UnacceptableProtocolVersion])
  })

  it("a flood's first refusal is logged as a warning, the rest at debug", () => {
    const first = new ConnectRefusal.ConnectRefused({ reason: { _tag: "RateExceeded", address: "a", limit: 2, report: 3 } })
    const rest = new ConnectRefusal.ConnectRefused({ reason: { _tag: "RateExceeded", address: "a", limit: 2, report: undefined } })
    expect(ConnectRefusal.isQuiet(first.reason)).toBe(false)
    expect(ConnectRefusal.isQuiet(rest.reason)).toBe(true)
    expect(first.message).toContain("over --max-connect-rate 2 (3 refused since the last such line")
  })
})
