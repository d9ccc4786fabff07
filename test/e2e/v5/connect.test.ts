import { describe, expect, it } from "@effect/vitest"
import type { IConnackPacket } from "mqtt-packet"
import { barrier, sleep } from "../harness.ts"
import { hasStoredSession, id5, useE2E5 } from "./harness5.ts"

const e2e = useE2E5()

describe("MQTT 5 Clean Start and Session Expiry", { timeout: 15_000 }, () => {
  it("clean start=1 with session expiry 0: the session ends at disconnect", async () => {
    const broker = await e2e.broker()
    const id = id5("ce0")
    const first = await e2e.client(broker, { clientId: id, clean: true })
    expect(first.connack.sessionPresent).toBe(false)
    expect(await first.subscribe("cs0/t", { qos: 1 })).toEqual([1])
    await first.disconnect()

    const publisher = await e2e.client(broker)
    await publisher.publish("cs0/t", "for-the-old-session", { qos: 1 })

    const again = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(again.connack.sessionPresent).toBe(false)
    // The old subscription is gone too: nothing published on cs0/t reaches the new session.
    expect(await again.subscribe("cs0/barrier", { qos: 1 })).toEqual([1])
    await publisher.publish("cs0/t", "live", { qos: 1 })
    await barrier(publisher, again, "cs0/barrier")
    expect(again.on("cs0/t")).toEqual([])
  })

  it("clean start=0 with session expiry 60: reconnect finds the session and its queued QoS 1 messages", async () => {
    const broker = await e2e.broker()
    const id = id5("ce60")
    const first = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(await first.subscribe("cs60/t", { qos: 1 })).toEqual([1])
    await first.disconnect()

    const publisher = await e2e.client(broker)
    for (const n of [1, 2, 3]) await publisher.publish("cs60/t", `queued-${n}`, { qos: 1 })

    const again = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(again.connack.sessionPresent).toBe(true)
    const messages = await again.waitForMessages(3)
    expect(messages.map((m) => m.payload)).toEqual(["queued-1", "queued-2", "queued-3"])
    expect(messages.every((m) => m.qos === 1)).toBe(true)
  })

  it("a session with expiry 1 s is gone 2.5 s after the disconnect", async () => {
    const broker = await e2e.broker()
    const id = id5("ce1")
    const first = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } })
    expect(await first.subscribe("cs1/t", { qos: 1 })).toEqual([1])
    await first.disconnect()
    // Still there right after the disconnect (only checked where the store is visible).
    const storedBefore = await hasStoredSession(broker, id)
    if (storedBefore !== undefined) expect(storedBefore).toBe(true)

    await sleep(2_500)
    const storedAfter = await hasStoredSession(broker, id)
    if (storedAfter !== undefined) expect(storedAfter).toBe(false)
    const again = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } })
    expect(again.connack.sessionPresent).toBe(false)
  })

  it("clean start=1 with session expiry 60: the new session survives the disconnect", async () => {
    const broker = await e2e.broker()
    const id = id5("cs1e")
    const first = await e2e.client(broker, { clientId: id, clean: true, properties: { sessionExpiryInterval: 60 } })
    expect(first.connack.sessionPresent).toBe(false)
    expect(await first.subscribe("cs1e/t", { qos: 1 })).toEqual([1])
    await first.disconnect()

    const publisher = await e2e.client(broker)
    await publisher.publish("cs1e/t", "kept", { qos: 1 })

    const again = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(again.connack.sessionPresent).toBe(true)
    expect((await again.waitForMessage("cs1e/t")).payload).toBe("kept")
  })

  it("a 3.1.1 clean=0 session is resumed by an MQTT 5 reconnect of the same client id", async () => {
    const broker = await e2e.broker()
    const id = id5("mix")
    const v4 = await e2e.client4(broker, { clientId: id, clean: false })
    expect(await v4.subscribe("mix/t", 1)).toEqual([1])
    await v4.disconnect()

    const publisher = await e2e.client(broker)
    await publisher.publish("mix/t", "queued-for-3.1.1", { qos: 1 })

    const v5 = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(v5.connack.sessionPresent).toBe(true)
    expect((await v5.waitForMessage("mix/t")).payload).toBe("queued-for-3.1.1")
    // The subscription made over 3.1.1 keeps working for the MQTT 5 connection.
    await publisher.publish("mix/t", "live", { qos: 1 })
    expect((await v5.waitForMessage("mix/t", "live")).qos).toBe(1)
  })

  it("an MQTT 5 session with expiry is resumed by a 3.1.1 clean=0 reconnect of the same client id", async () => {
    const broker = await e2e.broker()
    const id = id5("mix5")
    const v5 = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(await v5.subscribe("mix5/t", { qos: 1 })).toEqual([1])
    await v5.disconnect()

    const publisher = await e2e.client(broker)
    await publisher.publish("mix5/t", "queued-for-5", { qos: 1 })

    const v4 = await e2e.client4(broker, { clientId: id, clean: false })
    expect(v4.connack.sessionPresent).toBe(true)
    expect((await v4.waitForMessage("mix5/t")).payload).toBe("queued-for-5")
  })

  it("persistentSessionExpiry ends an idle 3.1.1 clean=0 session", async () => {
    const broker = await e2e.broker({ persistentSessionExpiry: 1 })
    const id = id5("pse")
    const v4 = await e2e.client4(broker, { clientId: id, clean: false })
    expect(await v4.subscribe("pse/t", 1)).toEqual([1])
    await v4.disconnect()
    await sleep(2_500)
    const again = await e2e.client4(broker, { clientId: id, clean: false })
    expect(again.connack.sessionPresent).toBe(false)
  })
})

describe("MQTT 5 CONNACK properties", { timeout: 10_000 }, () => {
  it("an empty client id gets an Assigned Client Identifier, distinct per client, that names the session", async () => {
    const broker = await e2e.broker()
    const first = await e2e.client(broker, { clientId: "" })
    const assigned = first.connack.properties?.assignedClientIdentifier
    expect(typeof assigned).toBe("string")
    expect(assigned!.length).toBeGreaterThan(0)

    const second = await e2e.client(broker, { clientId: "" })
    const other = second.connack.properties?.assignedClientIdentifier
    expect(typeof other).toBe("string")
    expect(other!.length).toBeGreaterThan(0)
    expect(other).not.toBe(assigned)

    // The assigned id works as a normal connection: it can subscribe and receive.
    expect(await first.subscribe("aci/t", { qos: 1 })).toEqual([1])
    await second.publish("aci/t", "hello", { qos: 1 })
    expect((await first.waitForMessage("aci/t")).payload).toBe("hello")

    // ...and it really is the client's identifier: connecting with it takes the session over.
    const takeover = await e2e.client(broker, { clientId: assigned! })
    expect(takeover.connack.reasonCode ?? 0).toBe(0)
    expect(await first.waitClosed()).toBe(true)
    expect(second.isClosed).toBe(false)
  })

  it("Server Keep Alive caps a longer client keepalive at maxKeepalive", async () => {
    const broker = await e2e.broker({ maxKeepalive: 10 })
    const client = await e2e.client(broker, { keepalive: 60 })
    expect(client.connack.properties?.serverKeepAlive).toBe(10)
  })

  it("Server Keep Alive replaces a client keepalive of 0 when maxKeepalive is set", async () => {
    const broker = await e2e.broker({ maxKeepalive: 10 })
    const { connack } = await e2e.rawConnect(broker, { keepalive: 0 })
    expect(connack.reasonCode).toBe(0)
    expect(connack.properties?.serverKeepAlive).toBe(10)
  })

  it("a client keepalive within maxKeepalive is kept (no different Server Keep Alive)", async () => {
    const broker = await e2e.broker({ maxKeepalive: 10 })
    const client = await e2e.client(broker, { keepalive: 5 })
    const serverKeepAlive = client.connack.properties?.serverKeepAlive
    if (serverKeepAlive !== undefined) expect(serverKeepAlive).toBe(5)
  })

  const limits: ReadonlyArray<{
    readonly name: string
    readonly options: Parameters<typeof e2e.broker>[0]
    readonly check: (properties: NonNullable<IConnackPacket["properties"]>) => void
  }> = [
    {
      name: "Receive Maximum",
      options: { receiveMaximum: 5 },
      check: (p) => expect(p.receiveMaximum).toBe(5)
    },
    {
      name: "Maximum QoS",
      options: { maximumQos: 1 },
      check: (p) => expect(p.maximumQoS).toBe(1)
    },
    {
      name: "Retain Available = 0",
      options: { retainAvailable: false },
      check: (p) => expect(p.retainAvailable).toBe(false)
    },
    {
      name: "Maximum Packet Size",
      options: { maxPacketSize: 1000 },
      check: (p) => expect(p.maximumPacketSize).toBe(1000)
    },
    {
      name: "Topic Alias Maximum",
      options: { topicAliasMaximum: 3 },
      check: (p) => expect(p.topicAliasMaximum).toBe(3)
    }
  ]
  for (const { name, options, check } of limits) {
    it(`CONNACK carries the configured ${name}`, async () => {
      const broker = await e2e.broker(options)
      const { connack } = await e2e.rawConnect(broker)
      expect(connack.reasonCode).toBe(0)
      check(connack.properties ?? {})
    })
  }

  it("a default broker does not restrict QoS or retain and advertises wildcard, subscription identifier and shared subscription support", async () => {
    const broker = await e2e.broker()
    const { connack } = await e2e.rawConnect(broker)
    expect(connack.reasonCode).toBe(0)
    const properties = connack.properties ?? {}
    expect(properties.maximumQoS).toBeUndefined()
    expect(properties.retainAvailable).not.toBe(false)
    expect(properties.wildcardSubscriptionAvailable).not.toBe(false)
    expect(properties.subscriptionIdentifiersAvailable).not.toBe(false)
    expect(properties.sharedSubscriptionAvailable).not.toBe(false)
    // Topic aliases are on by default (10).
    expect(properties.topicAliasMaximum).toBe(10)
  })

  it("an unsupported authentication method is refused with CONNACK 0x8C and the connection is closed", async () => {
    const broker = await e2e.broker()
    const raw = await e2e.raw(broker)
    raw.connect({ clientId: id5("auth"), properties: { authenticationMethod: "SCRAM-SHA-1" } })
    const connack = (await raw.next("connack")) as IConnackPacket
    expect(connack.reasonCode).toBe(0x8c)
    expect(connack.sessionPresent).toBe(false)
    expect(await raw.waitClosed()).toBe(true)
  })
})
