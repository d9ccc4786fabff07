import { describe, expect, it } from "@effect/vitest"
import type { IConnackPacket, ISubackPacket } from "mqtt-packet"
import { barrier, encodeConnect, sleep, uniqueId, useE2E } from "./harness.ts"

const e2e = useE2E()

describe("CONNECT", () => {
  it("CONNACK sessionPresent is 0 on the first clean=0 connect", async () => {
    const broker = await e2e.broker()
    const client = await e2e.client(broker, { clientId: uniqueId("first"), clean: false })
    expect(client.connack.returnCode).toBe(0)
    expect(client.connack.sessionPresent).toBe(false)
  })

  it("clean=1 discards a stored session: sessionPresent is 0 and old subscriptions are gone", async () => {
    const broker = await e2e.broker()
    const id = uniqueId("clean")
    const persistent = await e2e.client(broker, { clientId: id, clean: false })
    expect(await persistent.subscribe("old/t", 1)).toEqual([1])
    await persistent.disconnect()

    const publisher = await e2e.client(broker)
    // Queued for the stored session; must be discarded together with it.
    await publisher.publish("old/t", "queued", { qos: 1 })

    const fresh = await e2e.client(broker, { clientId: id, clean: true })
    expect(fresh.connack.sessionPresent).toBe(false)
    expect(await fresh.subscribe("old/barrier", 1)).toEqual([1])
    await publisher.publish("old/t", "live", { qos: 1 })
    await barrier(publisher, fresh, "old/barrier")
    expect(fresh.payloads("old/t")).toEqual([])
  })

  it("zero-length client id with clean=1 is accepted and gets its own working session", async () => {
    const broker = await e2e.broker()
    const { raw: first, connack: firstAck } = await e2e.rawConnect(broker, { clientId: "", clean: true })
    expect(firstAck.returnCode).toBe(0)
    expect(firstAck.sessionPresent).toBe(false)
    // A second anonymous client must get a different id (no takeover of the first).
    const { raw: second, connack: secondAck } = await e2e.rawConnect(broker, { clientId: "", clean: true })
    expect(secondAck.returnCode).toBe(0)

    first.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "anon/t", qos: 1 }] })
    expect(((await first.next("suback")) as ISubackPacket).granted).toEqual([1])
    second.send({ cmd: "publish", topic: "anon/t", payload: "hello", qos: 0, dup: false, retain: false })
    const delivered = await first.next("publish")
    expect(delivered).toMatchObject({ topic: "anon/t" })
    expect(String((delivered as { payload: Buffer }).payload)).toBe("hello")
    await second.ping()
    expect(first.isClosed).toBe(false)
    expect(second.isClosed).toBe(false)
  })

  it("zero-length client id with clean=0 gets CONNACK return code 2 (identifier rejected) and is closed", async () => {
    const broker = await e2e.broker()
    const raw = await e2e.raw(broker)
    raw.write(encodeConnect({ clientId: "", clean: false }))
    const connack = (await raw.next("connack")) as IConnackPacket
    expect(connack.returnCode).toBe(2)
    expect(connack.sessionPresent).toBe(false)
    expect(await raw.waitClosed()).toBe(true)
  })

  it("unsupported protocol level 7 gets CONNACK return code 1 and is closed", async () => {
    const broker = await e2e.broker()
    const raw = await e2e.raw(broker)
    raw.write(encodeConnect({ clientId: uniqueId("lvl"), protocolLevel: 7 }))
    const connack = (await raw.next("connack")) as IConnackPacket
    expect(connack.returnCode).toBe(1)
    expect(await raw.waitClosed()).toBe(true)
  })

  it("a wrong protocol name closes the connection without accepting it", async () => {
    const broker = await e2e.broker()
    const raw = await e2e.raw(broker)
    raw.write(encodeConnect({ clientId: uniqueId("name"), protocolName: "MQTX", protocolLevel: 4 }))
    expect(await raw.waitClosed()).toBe(true)
    const accepted = raw.received.filter((p) => p.cmd === "connack" && (p as IConnackPacket).returnCode === 0)
    expect(accepted).toEqual([])
  })

  it("a second CONNECT on the same connection closes it", async () => {
    const broker = await e2e.broker()
    const id = uniqueId("twice")
    const { raw, connack } = await e2e.rawConnect(broker, { clientId: id })
    expect(connack.returnCode).toBe(0)
    raw.write(encodeConnect({ clientId: id }))
    expect(await raw.waitClosed()).toBe(true)
    expect(raw.received.filter((p) => p.cmd === "connack")).toHaveLength(1)
  })

  it("a TCP connection that sends nothing is closed after connectTimeoutMs", async () => {
    const broker = await e2e.broker({ connectTimeoutMs: 300 })
    const raw = await e2e.raw(broker)
    const opened = Date.now()
    expect(await raw.waitClosed(3_000)).toBe(true)
    const elapsed = Date.now() - opened
    expect(elapsed).toBeGreaterThanOrEqual(200)
    expect(elapsed).toBeLessThan(2_500)
    expect(raw.received).toEqual([])
  })

  it("a connection that sends CONNECT in time is not closed by connectTimeoutMs", async () => {
    const broker = await e2e.broker({ connectTimeoutMs: 300 })
    const { raw, connack } = await e2e.rawConnect(broker, { clientId: uniqueId("intime"), keepalive: 0 })
    expect(connack.returnCode).toBe(0)
    await sleep(700)
    await raw.ping()
    expect(raw.isClosed).toBe(false)
  })

  it("an MQTT 3.1 client (MQIsdp, protocolVersion 3) can connect, subscribe, publish and receive", async () => {
    const broker = await e2e.broker()
    const legacy = await e2e.client(broker, { protocolVersion: 3, clientId: uniqueId("v3") })
    expect(legacy.connack.returnCode).toBe(0)
    expect(await legacy.subscribe("legacy/t", 1)).toEqual([1])
    const modern = await e2e.client(broker)
    expect(await modern.subscribe("legacy/back", 1)).toEqual([1])

    await modern.publish("legacy/t", "to-v3", { qos: 1 })
    const received = await legacy.waitForMessage("legacy/t", "to-v3")
    expect(received.qos).toBe(1)

    await legacy.publish("legacy/back", "from-v3", { qos: 1 })
    expect((await modern.waitForMessage("legacy/back", "from-v3")).qos).toBe(1)
  })
})
