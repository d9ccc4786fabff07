/**
 * Connections that go idle between bytes (issue 16: an idle connection has no fiber; its reader
 * waits a couple of watchdog ticks, then ends, and the next bytes start another): packets split
 * across short and long silences are put back together, and a close from outside (a takeover,
 * the broker stopping) reaches a connection that is idle at that moment.
 */
import { describe, expect, it } from "@effect/vitest"
import type { IConnackPacket, IPublishPacket, ISubackPacket } from "mqtt-packet"
import { generate } from "mqtt-packet"
import { encodeConnect, sleep, uniqueId, useE2E } from "./harness.ts"

const e2e = useE2E()

/** Writes `bytes` in pieces of `size`, with `gapMs` of silence between them. */
const trickle = async (write: (bytes: Buffer) => void, bytes: Buffer, size: number, gapMs: number) => {
  for (let at = 0; at < bytes.length; at += size) {
    write(bytes.subarray(at, at + size))
    await sleep(gapMs)
  }
}

describe("idle connections", () => {
  it("a CONNECT and two PUBLISHes cut apart by silences long enough for the reader to end are put back together", async () => {
    const broker = await e2e.broker()
    const raw = await e2e.raw(broker)
    const write = (bytes: Buffer) => raw.write(bytes)
    // a reader lets go after two watchdog ticks (250 ms apart): 700 ms of silence outlasts it
    await trickle(write, encodeConnect({ clientId: uniqueId("gaps"), clean: true }), 9, 700)
    expect(((await raw.next("connack")) as IConnackPacket).returnCode).toBe(0)
    raw.write(generate({ cmd: "subscribe", messageId: 3, subscriptions: [{ topic: "idle/gap", qos: 0 }] }))
    expect(((await raw.next("suback")) as ISubackPacket).granted).toEqual([0])
    const both = Buffer.concat([
      generate({ cmd: "publish", topic: "idle/gap", payload: Buffer.from("left"), qos: 0, retain: false, dup: false }),
      generate({ cmd: "publish", topic: "idle/gap", payload: Buffer.from("right"), qos: 0, retain: false, dup: false })
    ])
    await trickle(write, both, 17, 700)
    const first = (await raw.next("publish")) as IPublishPacket
    const second = (await raw.next("publish")) as IPublishPacket
    expect([first.payload.toString(), second.payload.toString()]).toEqual(["left", "right"])
  }, 15_000)

  it("CONNECT, SUBSCRIBE and PUBLISH sent a few bytes at a time with short gaps are each handled once, in order", async () => {
    const broker = await e2e.broker()
    const raw = await e2e.raw(broker)
    const write = (bytes: Buffer) => raw.write(bytes)
    await trickle(write, encodeConnect({ clientId: uniqueId("trickle"), clean: true }), 3, 15)
    expect(((await raw.next("connack")) as IConnackPacket).returnCode).toBe(0)
    const subscribe = generate({ cmd: "subscribe", messageId: 7, subscriptions: [{ topic: "idle/t", qos: 0 }] })
    await trickle(write, subscribe, 2, 15)
    expect(((await raw.next("suback")) as ISubackPacket).granted).toEqual([0])
    // two PUBLISHes in one stream, cut across their boundary
    const both = Buffer.concat([
      generate({ cmd: "publish", topic: "idle/t", payload: Buffer.from("one"), qos: 0, retain: false, dup: false }),
      generate({ cmd: "publish", topic: "idle/t", payload: Buffer.from("two"), qos: 0, retain: false, dup: false })
    ])
    await trickle(write, both, 5, 15)
    const first = (await raw.next("publish")) as IPublishPacket
    const second = (await raw.next("publish")) as IPublishPacket
    expect([first.payload.toString(), second.payload.toString()]).toEqual(["one", "two"])
    await sleep(100)
    expect(raw.received.filter((packet) => packet.cmd === "publish")).toHaveLength(2)
  })

  it("a takeover closes the idle connection holding the client id, and the new one gets the session", async () => {
    const broker = await e2e.broker()
    const id = uniqueId("idle-takeover")
    const old = await e2e.client(broker, { clientId: id, clean: false })
    expect(await old.subscribe("idle/kept", 1)).toEqual([1])
    await sleep(200) // idle: nothing read, nothing to write
    const fresh = await e2e.client(broker, { clientId: id, clean: false })
    expect(fresh.connack.sessionPresent).toBe(true)
    const publisher = await e2e.client(broker)
    await publisher.publish("idle/kept", "after", { qos: 1 })
    await fresh.waitForMessages(1)
    expect(fresh.payloads("idle/kept")).toEqual(["after"])
  })

  it("stopping the broker closes every idle connection", async () => {
    const broker = await e2e.broker()
    const clients = await Promise.all(
      Array.from({ length: 20 }, () => e2e.rawConnect(broker, { clientId: uniqueId("idle-stop"), clean: true }))
    )
    await sleep(200)
    await broker.stop()
    await Promise.all(clients.map(({ raw }) => raw.closed))
    expect(clients.every(({ raw }) => raw.isClosed)).toBe(true)
  })
})
