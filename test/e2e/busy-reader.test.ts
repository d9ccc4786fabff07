/**
 * A busy connection's reader (bytes again within a watchdog tick of its last burst) parks between
 * bursts, and what arrives then is handled in the socket's data event itself (`Connection.advance`);
 * only what has to wait goes to the reader's fiber. Driven with a raw socket so that the bursts,
 * and what shares one TCP segment, are the test's choice.
 */
import { describe, expect, it } from "@effect/vitest"
import { generate } from "mqtt-packet"
import { sleep, uniqueId, useE2E } from "./harness.ts"

const e2e = useE2E()

const publish = (payload: string) =>
  generate({ cmd: "publish", topic: "busy/t", payload: Buffer.from(payload), qos: 0, dup: false, retain: false })

describe("busy reader", () => {
  it("PUBLISHes, a SUBSCRIBE and PINGREQs mixed in the same segments are all handled, in order, then a malformed packet still closes", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    await subscriber.subscribe("busy/t", 0)
    const { raw } = await e2e.rawConnect(broker, { clientId: uniqueId("busy") })

    // two bursts close together make the connection busy: its reader parks after each
    raw.write(publish("1"))
    await sleep(20)
    raw.write(publish("2"))
    await sleep(20)
    raw.write(Buffer.concat([publish("3"), publish("4"), publish("5")]))
    await sleep(20)
    // a handler with work left (SUBSCRIBE) between PUBLISHes handled at once, in one segment
    raw.write(Buffer.concat([publish("6"), generate({ cmd: "subscribe", messageId: 7, subscriptions: [{ topic: "busy/other", qos: 0 }] }), publish("7")]))
    expect((await raw.next("suback")).messageId).toBe(7)
    await sleep(20)
    raw.write(Buffer.concat([publish("8"), generate({ cmd: "pingreq" }), publish("9"), generate({ cmd: "pingreq" })]))
    await raw.next("pingresp")
    await raw.next("pingresp")

    await subscriber.waitForMessage("busy/t", "9")
    expect(subscriber.payloads("busy/t")).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9"])

    await sleep(20)
    raw.write(Buffer.concat([publish("10"), Buffer.from([0xf0, 0x00]), publish("11")]))
    expect(await raw.waitClosed()).toBe(true)
    await subscriber.waitForMessage("busy/t", "10")
    await sleep(100)
    // what came after the malformed packet was not handled
    expect(subscriber.payloads("busy/t")).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"])
  })
})
