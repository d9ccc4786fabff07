import { describe, expect, it } from "@effect/vitest"
import { settle, sleep } from "../harness.ts"
import { type Client5, id5, useE2E5 } from "./harness5.ts"

const e2e = useE2E5()

interface Receiver {
  payloads(topic: string): Array<string>
}

const range = (prefix: string, count: number): Array<string> => Array.from({ length: count }, (_, i) => `${prefix}${i}`)

/** Waits until `members` received `count` messages on `topic` between them (or the timeout passes). */
async function waitForTotal(members: ReadonlyArray<Receiver>, topic: string, count: number, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (members.reduce((n, m) => n + m.payloads(topic).length, 0) >= count) return
    await sleep(20)
  }
}

/** All payloads received on `topic` by the members, sorted. */
const union = (members: ReadonlyArray<Receiver>, topic: string): Array<string> =>
  members.flatMap((m) => m.payloads(topic)).sort()

async function publishAll(publisher: Client5, topic: string, payloads: ReadonlyArray<string>): Promise<void> {
  for (const payload of payloads) await publisher.publish(topic, payload, { qos: 1 })
}

describe("MQTT 5 shared subscriptions", { timeout: 15_000 }, () => {
  it("three members of one group receive 30 messages between them, each exactly once, every member getting some", async () => {
    const broker = await e2e.broker()
    const members: Array<Client5> = []
    for (let i = 0; i < 3; i++) {
      const member = await e2e.client(broker)
      expect(await member.subscribe("$share/g1/sh/t", { qos: 1 })).toEqual([1])
      members.push(member)
    }
    const publisher = await e2e.client(broker)
    const sent = range("m", 30)
    await publishAll(publisher, "sh/t", sent)
    await waitForTotal(members, "sh/t", 30)
    await settle()
    expect(union(members, "sh/t")).toEqual([...sent].sort())
    for (const member of members) expect(member.payloads("sh/t").length).toBeGreaterThan(0)
    // Each member still sees its share in publish order.
    for (const member of members) {
      const indexes = member.payloads("sh/t").map((p) => Number(p.slice(1)))
      expect(indexes).toEqual([...indexes].sort((a, b) => a - b))
    }
  })

  it("messages to a shared subscription carry the shared topic name, not the $share filter", async () => {
    const broker = await e2e.broker()
    const member = await e2e.client(broker)
    expect(await member.subscribe("$share/g/shn/+", { qos: 1 })).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("shn/x", "hello", { qos: 1 })
    const message = await member.waitForMessage("shn/x")
    expect(message.payload).toBe("hello")
  })

  it("a 3.1.1 client can join a shared group with MQTT 5 members", async () => {
    const broker = await e2e.broker()
    const v5 = await e2e.client(broker)
    expect(await v5.subscribe("$share/mixed/shm/t", { qos: 1 })).toEqual([1])
    const v4 = await e2e.client4(broker)
    expect(await v4.subscribe("$share/mixed/shm/t", 1)).toEqual([1])
    const publisher = await e2e.client(broker)
    const sent = range("m", 20)
    await publishAll(publisher, "shm/t", sent)
    const members = [v5, v4]
    await waitForTotal(members, "shm/t", 20)
    await settle()
    expect(union(members, "shm/t")).toEqual([...sent].sort())
    expect(v4.payloads("shm/t").length).toBeGreaterThan(0)
    expect(v5.payloads("shm/t").length).toBeGreaterThan(0)
  })

  it("a persistent member that is offline gets none of the group's messages while other members are online", async () => {
    const broker = await e2e.broker()
    const offlineId = id5("sho")
    const persistent = await e2e.client(broker, {
      clientId: offlineId,
      clean: false,
      properties: { sessionExpiryInterval: 60 }
    })
    expect(await persistent.subscribe("$share/g/sho/t", { qos: 1 })).toEqual([1])
    const online: Array<Client5> = []
    for (let i = 0; i < 2; i++) {
      const member = await e2e.client(broker)
      expect(await member.subscribe("$share/g/sho/t", { qos: 1 })).toEqual([1])
      online.push(member)
    }
    await persistent.disconnect()

    const publisher = await e2e.client(broker)
    const sent = range("m", 12)
    await publishAll(publisher, "sho/t", sent)
    await waitForTotal(online, "sho/t", 12)
    await settle()
    expect(union(online, "sho/t")).toEqual([...sent].sort())

    // Nothing was queued for the offline member either.
    const back = await e2e.client(broker, { clientId: offlineId, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(back.connack.sessionPresent).toBe(true)
    await sleep(300)
    expect(back.payloads("sho/t")).toEqual([])
  })

  it("two groups on the same filter each receive every message once", async () => {
    const broker = await e2e.broker()
    const groupA: Array<Client5> = []
    const groupB: Array<Client5> = []
    for (const [group, name] of [[groupA, "ga"], [groupB, "gb"]] as const) {
      for (let i = 0; i < 2; i++) {
        const member = await e2e.client(broker)
        expect(await member.subscribe(`$share/${name}/shg/t`, { qos: 1 })).toEqual([1])
        group.push(member)
      }
    }
    const publisher = await e2e.client(broker)
    const sent = range("m", 10)
    await publishAll(publisher, "shg/t", sent)
    await waitForTotal(groupA, "shg/t", 10)
    await waitForTotal(groupB, "shg/t", 10)
    await settle()
    expect(union(groupA, "shg/t")).toEqual([...sent].sort())
    expect(union(groupB, "shg/t")).toEqual([...sent].sort())
  })

  it("a non-shared subscriber on the same filter receives every message besides the group", async () => {
    const broker = await e2e.broker()
    const group: Array<Client5> = []
    for (let i = 0; i < 2; i++) {
      const member = await e2e.client(broker)
      expect(await member.subscribe("$share/g/shp/#", { qos: 1 })).toEqual([1])
      group.push(member)
    }
    const plain = await e2e.client(broker)
    expect(await plain.subscribe("shp/#", { qos: 1 })).toEqual([1])
    const publisher = await e2e.client(broker)
    const sent = range("m", 10)
    await publishAll(publisher, "shp/t", sent)
    await plain.waitForMessages(10)
    await waitForTotal(group, "shp/t", 10)
    await settle()
    expect(plain.payloads("shp/t")).toEqual(sent)
    expect(union(group, "shp/t")).toEqual([...sent].sort())
  })

  it("a member that unsubscribes leaves the group: the others get everything", async () => {
    const broker = await e2e.broker()
    const leaving = await e2e.client(broker)
    expect(await leaving.subscribe("$share/g/shu/t", { qos: 1 })).toEqual([1])
    const staying = await e2e.client(broker)
    expect(await staying.subscribe("$share/g/shu/t", { qos: 1 })).toEqual([1])
    expect(await leaving.unsubscribe("$share/g/shu/t")).toEqual([0])
    const publisher = await e2e.client(broker)
    const sent = range("m", 6)
    await publishAll(publisher, "shu/t", sent)
    await staying.waitForMessages(6)
    await settle()
    expect(staying.payloads("shu/t")).toEqual(sent)
    expect(leaving.payloads("shu/t")).toEqual([])
  })
})
