import { describe, expect, it } from "@effect/vitest"
import type { IConnackPacket, IDisconnectPacket } from "mqtt-packet"
import { barrier, encodeVarInt, sleep } from "../harness.ts"
import { id5, peer, useE2E5 } from "./harness5.ts"

const e2e = useE2E5()

describe("MQTT 5 client DISCONNECT", { timeout: 10_000 }, () => {
  it("DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes the will", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("dw/t", { qos: 1 })).toEqual([1])
    const leaving = await e2e.client(broker, { will: { topic: "dw/t", payload: "will-0x04", qos: 1 } })
    await leaving.disconnect({ reasonCode: 0x04 })
    const will = await subscriber.waitForMessage("dw/t", "will-0x04")
    expect(will.qos).toBe(1)
  })

  it("a normal DISCONNECT (0x00) does not publish the will", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe({ "dn/t": { qos: 1 }, "dn/barrier": { qos: 1 } })).toEqual([1, 1])
    const leaving = await e2e.client(broker, { will: { topic: "dn/t", payload: "must-not-appear", qos: 1 } })
    await leaving.disconnect({ reasonCode: 0x00 })
    const publisher = await e2e.client(broker)
    await barrier(publisher, subscriber, "dn/barrier")
    expect(subscriber.on("dn/t")).toEqual([])
  })

  it("a Session Expiry Interval on DISCONNECT after connecting with expiry 0 is a protocol error: DISCONNECT 0x82", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { clientId: id5("dx"), clean: true })
    raw.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 60 } })
    const disconnect = (await raw.next("disconnect")) as IDisconnectPacket
    expect(disconnect.reasonCode).toBe(0x82)
    expect(await raw.waitClosed()).toBe(true)
  })

  it("that invalid DISCONNECT does not count as a normal one: the will is published and no session is kept", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("dxw/t", { qos: 1 })).toEqual([1])
    const id = id5("dxw")
    const { raw } = await e2e.rawConnect(broker, {
      clientId: id,
      clean: true,
      will: { topic: "dxw/t", payload: "protocol-error-will", qos: 1 }
    })
    raw.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 60 } })
    expect(await raw.waitClosed()).toBe(true)
    await subscriber.waitForMessage("dxw/t", "protocol-error-will")
    const again = await e2e.client(broker, { clientId: id, clean: false })
    expect(again.connack.sessionPresent).toBe(false)
  })

  it("connecting with expiry 10 and disconnecting with expiry 0 ends the session", async () => {
    const broker = await e2e.broker()
    const id = id5("d0")
    const first = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 10 } })
    expect(await first.subscribe("d0/t", { qos: 1 })).toEqual([1])
    await first.disconnect({ reasonCode: 0, properties: { sessionExpiryInterval: 0 } })
    const again = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 10 } })
    expect(again.connack.sessionPresent).toBe(false)
  })

  it("disconnecting with a longer Session Expiry Interval than at connect keeps the session", async () => {
    const broker = await e2e.broker()
    const id = id5("dl")
    const first = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } })
    expect(await first.subscribe("dl/t", { qos: 1 })).toEqual([1])
    await first.disconnect({ reasonCode: 0, properties: { sessionExpiryInterval: 60 } })
    const publisher = await e2e.client(broker)
    await publisher.publish("dl/t", "kept", { qos: 1 })
    await sleep(1_500)
    const again = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(again.connack.sessionPresent).toBe(true)
    expect((await again.waitForMessage("dl/t")).payload).toBe("kept")
  })
})

describe("MQTT 5 server DISCONNECT reason codes", { timeout: 10_000 }, () => {
  it("session takeover sends DISCONNECT 0x8E to the old connection", async () => {
    const broker = await e2e.broker()
    const id = id5("to")
    const old = await e2e.client(broker, { clientId: id })
    const fresh = await e2e.client(broker, { clientId: id })
    expect(fresh.connack.reasonCode ?? 0).toBe(0)
    const disconnect = await old.waitForServerDisconnect()
    expect(disconnect.reasonCode).toBe(0x8e)
    expect(await old.waitClosed()).toBe(true)
    expect(fresh.isClosed).toBe(false)
  })

  it("a keepalive timeout sends DISCONNECT 0x8D", async () => {
    const broker = await e2e.broker()
    const { raw, connack } = await e2e.rawConnect(broker, { keepalive: 1 })
    expect(connack.reasonCode).toBe(0)
    // Nothing more is sent: after 1.5 x 1 s the broker gives up.
    const started = Date.now()
    const disconnect = (await raw.next("disconnect", 4_000)) as IDisconnectPacket
    expect(disconnect.reasonCode).toBe(0x8d)
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
    expect(await raw.waitClosed()).toBe(true)
  })

  it("a malformed packet gets DISCONNECT 0x81", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker)
    // PUBLISH "a/b" whose Property Length (5) runs past the end of the packet.
    const body = Buffer.from([0x00, 0x03, 0x61, 0x2f, 0x62, 0x05, 0x01, 0x00])
    raw.write(Buffer.concat([Buffer.from([0x30]), encodeVarInt(body.length), body]))
    const disconnect = (await raw.next("disconnect")) as IDisconnectPacket
    expect(disconnect.reasonCode).toBe(0x81)
    expect(await raw.waitClosed()).toBe(true)
  })

  it("a second CONNECT is a protocol error: DISCONNECT 0x82", async () => {
    const broker = await e2e.broker()
    const id = id5("twice")
    const { raw } = await e2e.rawConnect(broker, { clientId: id })
    raw.connect({ clientId: id })
    const disconnect = (await raw.next("disconnect")) as IDisconnectPacket
    expect(disconnect.reasonCode).toBe(0x82)
    expect(await raw.waitClosed()).toBe(true)
    expect(raw.pending("connack")).toEqual([] as Array<IConnackPacket>)
  })

  it.skipIf(peer === "mosquitto")("stopping the broker sends DISCONNECT 0x8B (server shutting down) to MQTT 5 clients", async () => {
    const broker = await e2e.broker()
    const client = await e2e.client(broker)
    const { raw } = await e2e.rawConnect(broker)
    await broker.stop()
    expect(((await raw.next("disconnect")) as IDisconnectPacket).reasonCode).toBe(0x8b)
    expect((await client.waitForServerDisconnect()).reasonCode).toBe(0x8b)
    expect(await raw.waitClosed()).toBe(true)
    expect(await client.waitClosed()).toBe(true)
  })
})
