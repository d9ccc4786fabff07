import { describe, expect, it } from "@effect/vitest"
import type { IDisconnectPacket, IPubackPacket, IPublishPacket } from "mqtt-packet"
import { barrier, settle, sleep } from "../harness.ts"
import { encodePublish5, id5, publishFrameUserProperties, useE2E5, userProperty } from "./harness5.ts"

const e2e = useE2E5()

describe("MQTT 5 PUBLISH properties", { timeout: 10_000 }, () => {
  it("Content Type, Response Topic, Correlation Data and Payload Format Indicator are forwarded unchanged", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("props/t", { qos: 1 })).toEqual([1])
    const publisher = await e2e.client(broker)
    const correlation = Buffer.from([0x00, 0x01, 0x02, 0xff, 0x80])
    await publisher.publish("props/t", "{\"a\":1}", {
      qos: 1,
      properties: {
        contentType: "application/json; charset=utf-8",
        responseTopic: "props/reply/ü",
        correlationData: correlation,
        payloadFormatIndicator: true
      }
    })
    const message = await subscriber.waitForMessage("props/t")
    expect(message.payload).toBe("{\"a\":1}")
    expect(message.properties.contentType).toBe("application/json; charset=utf-8")
    expect(message.properties.responseTopic).toBe("props/reply/ü")
    expect(Buffer.compare(message.properties.correlationData ?? Buffer.alloc(0), correlation)).toBe(0)
    expect(message.properties.payloadFormatIndicator).toBe(true)
  })

  it("a message without properties arrives without publisher properties", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("bare/t", { qos: 1 })).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("bare/t", "plain", { qos: 1 })
    const message = await subscriber.waitForMessage("bare/t")
    expect(message.properties.contentType).toBeUndefined()
    expect(message.properties.responseTopic).toBeUndefined()
    expect(message.properties.correlationData).toBeUndefined()
    expect(message.properties.userProperties).toBeUndefined()
    expect(message.properties.payloadFormatIndicator ?? false).toBe(false)
    expect(message.properties.messageExpiryInterval).toBeUndefined()
  })

  it("User Properties are forwarded in order, repeated keys included", async () => {
    const broker = await e2e.broker()
    const { raw: subscriber } = await e2e.rawConnect(broker)
    subscriber.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "up/t", qos: 1 }] })
    expect(((await subscriber.next("suback")) as { granted: Array<number> }).granted).toEqual([1])

    const { raw: publisher } = await e2e.rawConnect(broker)
    const pairs: Array<readonly [string, string]> = [
      ["region", "eu"],
      ["trace", "t-1"],
      ["region", "us"],
      ["ä-key", "ü-value"],
      ["trace", "t-2"]
    ]
    publisher.write(encodePublish5({
      topic: "up/t",
      payload: "with-user-properties",
      qos: 1,
      messageId: 9,
      properties: pairs.map(([k, v]) => userProperty(k, v))
    }))
    const puback = (await publisher.next("puback")) as IPubackPacket
    expect(puback.messageId).toBe(9)
    expect(puback.reasonCode ?? 0).toBe(0)

    const frame = await subscriber.nextFrame("publish")
    expect((frame.packet as IPublishPacket).payload.toString()).toBe("with-user-properties")
    expect(publishFrameUserProperties(frame.bytes)).toEqual(pairs)
  })

  it("User Properties reach an mqtt.js subscriber (repeated key as a list)", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("up2/t", { qos: 0 })).toEqual([0])
    const publisher = await e2e.client(broker)
    await publisher.publish("up2/t", "x", { qos: 1, properties: { userProperties: { a: ["1", "2"], b: "3" } } })
    const message = await subscriber.waitForMessage("up2/t")
    expect(message.properties.userProperties).toEqual({ a: ["1", "2"], b: "3" })
  })

  it("properties survive queueing for an offline session", async () => {
    const broker = await e2e.broker()
    const id = id5("pq")
    const offline = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(await offline.subscribe("pq/t", { qos: 1 })).toEqual([1])
    await offline.disconnect()

    const publisher = await e2e.client(broker)
    await publisher.publish("pq/t", "queued", {
      qos: 1,
      properties: {
        contentType: "text/plain",
        responseTopic: "pq/reply",
        correlationData: Buffer.from("corr"),
        userProperties: { k: "v" }
      }
    })
    const back = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(back.connack.sessionPresent).toBe(true)
    const message = await back.waitForMessage("pq/t")
    expect(message.properties.contentType).toBe("text/plain")
    expect(message.properties.responseTopic).toBe("pq/reply")
    expect(message.properties.correlationData?.toString()).toBe("corr")
    expect(message.properties.userProperties).toEqual({ k: "v" })
  })

  it("a queued message whose Message Expiry Interval elapsed is not delivered", async () => {
    const broker = await e2e.broker()
    const id = id5("mx")
    const offline = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(await offline.subscribe("mx/t", { qos: 1 })).toEqual([1])
    await offline.disconnect()

    const publisher = await e2e.client(broker)
    await publisher.publish("mx/t", "short-lived", { qos: 1, properties: { messageExpiryInterval: 1 } })
    await publisher.publish("mx/t", "no-expiry", { qos: 1 })
    await sleep(2_000)

    const back = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(back.connack.sessionPresent).toBe(true)
    // "no-expiry" was queued after "short-lived": once it is in, the other had its chance.
    await back.waitForMessage("mx/t", "no-expiry")
    await settle()
    expect(back.payloads("mx/t")).toEqual(["no-expiry"])
  })

  it("a queued message within its Message Expiry Interval is delivered with the remaining interval", async () => {
    const broker = await e2e.broker()
    const id = id5("mr")
    const offline = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(await offline.subscribe("mr/t", { qos: 1 })).toEqual([1])
    await offline.disconnect()

    const publisher = await e2e.client(broker)
    await publisher.publish("mr/t", "long-lived", { qos: 1, properties: { messageExpiryInterval: 60 } })
    await sleep(1_200)

    const back = await e2e.client(broker, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    const message = await back.waitForMessage("mr/t", "long-lived")
    const remaining = message.properties.messageExpiryInterval
    expect(remaining).toBeDefined()
    expect(remaining!).toBeGreaterThanOrEqual(1)
    // At least one whole second was spent in the queue.
    expect(remaining!).toBeLessThanOrEqual(59)
  })

  it("a live message keeps its Message Expiry Interval", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("ml/t", { qos: 1 })).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("ml/t", "live", { qos: 1, properties: { messageExpiryInterval: 30 } })
    const remaining = (await subscriber.waitForMessage("ml/t")).properties.messageExpiryInterval
    expect(remaining).toBeDefined()
    expect(remaining!).toBeGreaterThanOrEqual(29)
    expect(remaining!).toBeLessThanOrEqual(30)
  })

  it("Payload Format Indicator 1 with invalid UTF-8 gets PUBACK 0x99 and is not delivered", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("pfi/t", { qos: 1 })).toEqual([1])
    const { raw } = await e2e.rawConnect(broker)
    raw.send({
      cmd: "publish",
      topic: "pfi/t",
      payload: Buffer.from([0xff, 0xfe]),
      qos: 1,
      messageId: 5,
      dup: false,
      retain: false,
      properties: { payloadFormatIndicator: true }
    })
    const puback = (await raw.next("puback")) as IPubackPacket
    expect(puback.messageId).toBe(5)
    expect(puback.reasonCode).toBe(0x99)

    // The connection stays usable; a valid message published after it arrives alone.
    raw.send({
      cmd: "publish",
      topic: "pfi/t",
      payload: Buffer.from("valid ✓"),
      qos: 1,
      messageId: 6,
      dup: false,
      retain: false,
      properties: { payloadFormatIndicator: true }
    })
    expect(((await raw.next("puback")) as IPubackPacket).reasonCode ?? 0).toBe(0)
    await subscriber.waitForMessage("pfi/t", "valid ✓")
    await settle()
    expect(subscriber.payloads("pfi/t")).toEqual(["valid ✓"])
  })

  it("with Request Problem Information 0 the PUBACK 0x99 carries no Reason String or User Properties", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { properties: { requestProblemInformation: false } })
    raw.send({
      cmd: "publish",
      topic: "rpi/t",
      payload: Buffer.from([0xff, 0xfe, 0xfd]),
      qos: 1,
      messageId: 3,
      dup: false,
      retain: false,
      properties: { payloadFormatIndicator: true }
    })
    const puback = (await raw.next("puback")) as IPubackPacket
    expect(puback.reasonCode).toBe(0x99)
    expect(puback.properties?.reasonString).toBeUndefined()
    expect(puback.properties?.userProperties).toBeUndefined()
  })
})

describe("MQTT 5 topic aliases", { timeout: 10_000 }, () => {
  it("client to broker: a topic + alias, then the alias alone with an empty topic, both arrive on the topic", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("alias/in/#", { qos: 1 })).toEqual([1])
    const { raw } = await e2e.rawConnect(broker)
    raw.send({
      cmd: "publish",
      topic: "alias/in/x",
      payload: Buffer.from("first"),
      qos: 1,
      messageId: 1,
      dup: false,
      retain: false,
      properties: { topicAlias: 1 }
    })
    raw.send({
      cmd: "publish",
      topic: "",
      payload: Buffer.from("second"),
      qos: 1,
      messageId: 2,
      dup: false,
      retain: false,
      properties: { topicAlias: 1 }
    })
    const acks = (await raw.take("puback", 2)) as Array<IPubackPacket>
    expect(acks.map((a) => a.reasonCode ?? 0)).toEqual([0, 0])
    const messages = await subscriber.waitForMessages(2)
    expect(messages.map((m) => [m.topic, m.payload])).toEqual([["alias/in/x", "first"], ["alias/in/x", "second"]])
    // The subscriber did not allow aliases, so both packets name the topic in full.
    expect(messages.map((m) => m.packetTopic)).toEqual(["alias/in/x", "alias/in/x"])
    expect(messages.every((m) => m.properties.topicAlias === undefined)).toBe(true)
  })

  it("client to broker: an alias can be re-bound to another topic", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("rebind/#", { qos: 1 })).toEqual([1])
    const { raw } = await e2e.rawConnect(broker)
    const send = (topic: string, payload: string, messageId: number) =>
      raw.send({
        cmd: "publish",
        topic,
        payload: Buffer.from(payload),
        qos: 1,
        messageId,
        dup: false,
        retain: false,
        properties: { topicAlias: 2 }
      })
    send("rebind/a", "1", 1)
    send("", "2", 2)
    send("rebind/b", "3", 3)
    send("", "4", 4)
    await raw.take("puback", 4)
    const messages = await subscriber.waitForMessages(4)
    expect(messages.map((m) => `${m.topic}=${m.payload}`)).toEqual(["rebind/a=1", "rebind/a=2", "rebind/b=3", "rebind/b=4"])
  })

  it("a topic alias above the broker's Topic Alias Maximum gets DISCONNECT 0x94", async () => {
    const broker = await e2e.broker({ topicAliasMaximum: 2 })
    const { raw, connack } = await e2e.rawConnect(broker)
    expect(connack.properties?.topicAliasMaximum).toBe(2)
    raw.send({
      cmd: "publish",
      topic: "alias/big",
      payload: Buffer.from("x"),
      qos: 0,
      dup: false,
      retain: false,
      properties: { topicAlias: 3 }
    })
    const disconnect = (await raw.next("disconnect")) as IDisconnectPacket
    expect(disconnect.reasonCode).toBe(0x94)
    expect(await raw.waitClosed()).toBe(true)
  })

  it("topic alias 0 gets DISCONNECT 0x94", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker)
    // mqtt-packet refuses to encode alias 0, so the packet is hand-built.
    raw.write(encodePublish5({ topic: "alias/zero", payload: "x", properties: [Buffer.from([0x23, 0x00, 0x00])] }))
    const disconnect = (await raw.next("disconnect")) as IDisconnectPacket
    expect(disconnect.reasonCode).toBe(0x94)
    expect(await raw.waitClosed()).toBe(true)
  })

  it("broker to client: with Topic Alias Maximum 5, repeated messages on one topic carry an alias and an empty topic", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker, { properties: { topicAliasMaximum: 5 } })
    raw.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "alias/out", qos: 0 }] })
    await raw.next("suback")
    const publisher = await e2e.client(broker)
    for (const n of [1, 2, 3, 4]) await publisher.publish("alias/out", `m${n}`, { qos: 1 })

    const packets = (await raw.take("publish", 4)) as Array<IPublishPacket>
    expect(packets.map((p) => p.payload.toString())).toEqual(["m1", "m2", "m3", "m4"])
    const [first, ...rest] = packets
    expect(first!.topic).toBe("alias/out")
    const alias = first!.properties?.topicAlias
    expect(alias).toBeDefined()
    expect(alias!).toBeGreaterThanOrEqual(1)
    expect(alias!).toBeLessThanOrEqual(5)
    for (const packet of rest) {
      expect(packet.topic).toBe("")
      expect(packet.properties?.topicAlias).toBe(alias)
    }
  })

  it("broker to client: mqtt.js resolves the aliases the broker sends to the right topics", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker, { properties: { topicAliasMaximum: 5 } })
    expect(await subscriber.subscribe("aliasjs/#", { qos: 1 })).toEqual([1])
    const publisher = await e2e.client(broker)
    const sent = ["aliasjs/a", "aliasjs/a", "aliasjs/b", "aliasjs/a", "aliasjs/b", "aliasjs/b"]
    for (const [i, topic] of sent.entries()) await publisher.publish(topic, `p${i}`, { qos: 1 })

    const delivered = await subscriber.waitForDelivered(sent.length)
    expect(delivered.map((m) => `${m.topic}=${m.payload}`)).toEqual(sent.map((t, i) => `${t}=p${i}`))
    // Aliases were really used on the wire.
    expect(subscriber.messages.some((m) => m.packetTopic === "" && m.properties.topicAlias !== undefined)).toBe(true)
    expect(subscriber.isClosed).toBe(false)
  })

  it("a subscriber without Topic Alias Maximum never receives topic aliases", async () => {
    const broker = await e2e.broker()
    const { raw } = await e2e.rawConnect(broker)
    raw.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "noalias/t", qos: 1 }] })
    await raw.next("suback")
    const publisher = await e2e.client(broker)
    for (const n of [1, 2, 3, 4]) await publisher.publish("noalias/t", `m${n}`, { qos: 0 })
    const packets = (await raw.take("publish", 4)) as Array<IPublishPacket>
    for (const packet of packets) {
      expect(packet.topic).toBe("noalias/t")
      expect(packet.properties?.topicAlias).toBeUndefined()
    }
  })

  it("a topic alias is per connection: another publisher's alias does not resolve", async () => {
    const broker = await e2e.broker()
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("own/#", { qos: 1 })).toEqual([1])
    const { raw: first } = await e2e.rawConnect(broker)
    first.send({
      cmd: "publish",
      topic: "own/a",
      payload: Buffer.from("bound"),
      qos: 1,
      messageId: 1,
      dup: false,
      retain: false,
      properties: { topicAlias: 1 }
    })
    await first.next("puback")
    await subscriber.waitForMessage("own/a", "bound")

    const { raw: second } = await e2e.rawConnect(broker)
    // An empty topic with an alias this connection never bound: a protocol error.
    second.write(encodePublish5({ topic: "", payload: "unbound", qos: 1, messageId: 1, properties: [Buffer.from([0x23, 0x00, 0x01])] }))
    expect(await second.waitClosed()).toBe(true)
    const publisher = await e2e.client(broker)
    await barrier(publisher, subscriber, "own/barrier")
    expect(subscriber.payloads("own/a")).toEqual(["bound"])
  })
})

describe("MQTT 5 PUBLISH limits", { timeout: 10_000 }, () => {
  it("with retainAvailable false a PUBLISH with RETAIN=1 gets DISCONNECT 0x9A and is not delivered", async () => {
    const broker = await e2e.broker({ retainAvailable: false })
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("nr/t", { qos: 1 })).toEqual([1])
    const { raw, connack } = await e2e.rawConnect(broker)
    expect(connack.properties?.retainAvailable).toBe(false)
    raw.send({ cmd: "publish", topic: "nr/t", payload: Buffer.from("retained"), qos: 1, messageId: 1, dup: false, retain: true })
    expect(((await raw.next("disconnect")) as IDisconnectPacket).reasonCode).toBe(0x9a)
    expect(await raw.waitClosed()).toBe(true)

    const publisher = await e2e.client(broker)
    await barrier(publisher, subscriber, "nr/t")
    expect(subscriber.payloads("nr/t")).toEqual([])
  })

  it("with maximumQos 1 a QoS 2 PUBLISH gets DISCONNECT 0x9B and is not delivered", async () => {
    const broker = await e2e.broker({ maximumQos: 1 })
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("mq/t", { qos: 1 })).toEqual([1])
    const { raw, connack } = await e2e.rawConnect(broker)
    expect(connack.properties?.maximumQoS).toBe(1)
    raw.send({ cmd: "publish", topic: "mq/t", payload: Buffer.from("too-high"), qos: 2, messageId: 1, dup: false, retain: false })
    expect(((await raw.next("disconnect")) as IDisconnectPacket).reasonCode).toBe(0x9b)
    expect(await raw.waitClosed()).toBe(true)

    const publisher = await e2e.client(broker)
    await barrier(publisher, subscriber, "mq/t")
    expect(subscriber.payloads("mq/t")).toEqual([])
  })

  it("with maximumQos 1 a QoS 1 PUBLISH is accepted", async () => {
    const broker = await e2e.broker({ maximumQos: 1 })
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("mq1/t", { qos: 2 })).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("mq1/t", "ok", { qos: 1 })
    expect((await subscriber.waitForMessage("mq1/t")).qos).toBe(1)
  })
})
