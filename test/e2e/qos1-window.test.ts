/**
 * The in-flight window of a QoS 1 subscriber turning around: the PUBACKs of one read release the
 * queued messages at once and the reader writes them when it has handled that read (not at a
 * later turn), so what those PUBACKs released goes out in queue order, before the answer to a
 * packet that came after them in the same read, and the publisher's PUBACKs come back whatever
 * the subscriber does.
 */
import { describe, expect, it } from "@effect/vitest"
import { generate, type IPublishPacket, type Packet } from "mqtt-packet"
import { sleep, useE2E } from "./harness.ts"

const e2e = useE2E()

const TOPIC = "window/q1"
const N = 12
const WINDOW = 3

/** The bytes of several packets, to be written to the socket at once (one read for the broker). */
const together = (packets: ReadonlyArray<Packet>): Buffer =>
  Buffer.concat(packets.map((packet) => generate(packet, { protocolVersion: 4 })))

const puback = (messageId: number): Packet => ({ cmd: "puback", messageId })

describe("QoS 1 window turnaround", () => {
  it("PUBACKs in one read release the next queued PUBLISHes in order, written before the answer to a later packet of that read; nothing lost or sent twice", async () => {
    const broker = await e2e.broker({ maxInflightMessages: WINDOW, maxQueuedMessages: 100 })
    const { raw: subscriber } = await e2e.rawConnect(broker, { clientId: "window-sub" })
    subscriber.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: TOPIC, qos: 1 }] })
    expect(await subscriber.next("suback")).toMatchObject({ granted: [1] })

    const publisher = await e2e.client(broker)
    // every PUBLISH is acknowledged once queued, while the subscriber's window is full
    await Promise.all(Array.from({ length: N }, (_, i) => publisher.publish(TOPIC, String(i), { qos: 1 })))

    const first = (await subscriber.take("publish", WINDOW)) as Array<IPublishPacket>
    expect(first.map((p) => String(p.payload))).toEqual(["0", "1", "2"])
    await sleep(50)
    expect(subscriber.pending("publish"), "nothing beyond the window before a PUBACK").toEqual([])

    // two PUBACKs and a PINGREQ in one write: the two released PUBLISHes come first, in order
    subscriber.write(together([puback(first[0]!.messageId!), puback(first[1]!.messageId!), { cmd: "pingreq" }]))
    const next = [await subscriber.next(), await subscriber.next(), await subscriber.next()]
    expect(next.map((p) => p.cmd)).toEqual(["publish", "publish", "pingresp"])
    expect(next.slice(0, 2).map((p) => String((p as IPublishPacket).payload))).toEqual(["3", "4"])

    // the rest, acknowledged a window at a time in single writes
    const received: Array<IPublishPacket> = [...first, ...(next.slice(0, 2) as Array<IPublishPacket>)]
    let unacked = [first[2]!, ...(next.slice(0, 2) as Array<IPublishPacket>)]
    while (received.length < N) {
      subscriber.write(together(unacked.map((p) => puback(p.messageId!))))
      unacked = (await subscriber.take("publish", Math.min(WINDOW, N - received.length))) as Array<IPublishPacket>
      received.push(...unacked)
    }
    expect(received.map((p) => String(p.payload))).toEqual(Array.from({ length: N }, (_, i) => String(i)))
    expect(received.every((p) => p.dup === false)).toBe(true)
    subscriber.write(together(unacked.map((p) => puback(p.messageId!))))
    await subscriber.ping()
    expect(subscriber.pending("publish"), "nothing sent twice").toEqual([])
  })
})
