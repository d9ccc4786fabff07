/**
 * Topic authorization against a real broker with an ACL file (`AclAuthorizer`), driven by
 * mqtt.js over MQTT 3.1.1 and 5: denied subscriptions, publications and deliveries, retained
 * messages on a denied topic, and a reload that keeps connections up.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Logger, ManagedRuntime } from "effect"
import mqtt from "mqtt"
import type { MqttClient } from "mqtt"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as AclAuthorizer from "../../src/auth/AclAuthorizer.ts"
import { Authorizer } from "../../src/auth/Authorizer.ts"
import * as Broker from "../../src/broker/Broker.ts"
import { SessionPlugin } from "../../src/plugin/SessionPlugin.ts"

const ACL = [
  "# anonymous clients",
  "topic readwrite public/#",
  "topic read test/#",
  "topic deny test/nosubscribe",
  "user admin",
  "topic readwrite #",
  "user carol",
  "topic read carol/#",
  "user dev",
  "# every client: its own subtree",
  "pattern readwrite devices/%c/#"
].join("\n")

const aclFile = (text: string): string => {
  const path = join(mkdtempSync(join(tmpdir(), "acl-")), "acl")
  writeFileSync(path, text)
  return path
}

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A broker on a free loopback port authorizing with the ACL file at `path`. */
const startBroker = async (path: string) => {
  const acl = await Effect.runPromise(AclAuthorizer.load(path))
  const runtime = ManagedRuntime.make(
    Broker.layer({ host: "127.0.0.1", port: 0 }).pipe(
      Layer.provide(SessionPlugin.layer),
      Layer.provide(Layer.succeed(Authorizer, acl.authorizer)),
      Layer.provide(Logger.layer([]))
    )
  )
  const broker = await runtime.runPromise(Effect.service(Broker.Broker))
  cleanups.push(() => runtime.dispose())
  return { url: `mqtt://127.0.0.1:${broker.address.port}`, acl }
}

type Version = 4 | 5

const connect = async (url: string, protocolVersion: Version, clientId: string, username?: string) => {
  const client = await mqtt.connectAsync(url, {
    protocolVersion,
    clientId,
    reconnectPeriod: 0,
    ...(username === undefined ? {} : { username })
  })
  cleanups.push(() => client.endAsync(true))
  const received: Array<{ topic: string; payload: string; retain: boolean }> = []
  client.on("message", (topic, payload, packet) => received.push({ topic, payload: payload.toString(), retain: packet.retain }))
  return { client, received }
}

/** Waits until `client` has a message on `topic` (a barrier: anything sent before it has arrived). */
const waitFor = async (received: ReadonlyArray<{ topic: string }>, topic: string) => {
  for (let i = 0; i < 100; i++) {
    if (received.some((m) => m.topic === topic)) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`no message on ${topic}`)
}

/** The SUBACK codes, one per filter (mqtt.js rejects a SUBACK with any refusal, but keeps the packet). */
const grantedOf = (client: MqttClient, filters: Array<string>) =>
  client.subscribeAsync(filters, { qos: 1 }).then(
    (grants) => grants.map((grant) => grant.qos),
    (error: { packet?: { granted?: Array<number> } }) => {
      if (error.packet?.granted === undefined) throw error
      return error.packet.granted
    }
  )

const denial = { 4: 0x80, 5: 0x87 } as const

describe.each([4, 5] as const)("ACL file, MQTT %s", (version) => {
  const v = version === 5 ? "v5" : "v311"

  it(`a denied filter is refused alone in SUBACK (0x${denial[version].toString(16)})`, async () => {
    const { url } = await startBroker(aclFile(ACL))
    const { client } = await connect(url, version, `${v}-sub`)
    expect(await grantedOf(client, ["test/nosubscribe", "public/x", "devices/other/#"])).toEqual([denial[version], 1, denial[version]])
    // a filter inside a read grant is allowed (test/# covers test/+/x)
    expect(await grantedOf(client, ["test/+/x"])).toEqual([1])
  })

  it("pattern devices/%c/#: a client publishes and receives only inside its own subtree", async () => {
    const { url } = await startBroker(aclFile(ACL))
    const d1 = await connect(url, version, `${v}-d1`, "dev")
    const d2 = await connect(url, version, `${v}-d2`, "dev")
    expect(await grantedOf(d2.client, [`devices/${v}-d2/#`])).toEqual([1])
    expect(await grantedOf(d1.client, ["devices/#", `devices/${v}-d2/#`])).toEqual([denial[version], denial[version]])

    const outside = `devices/${v}-d2/x`
    if (version === 5) {
      await expect(d1.client.publishAsync(outside, "q1", { qos: 1 })).rejects.toMatchObject({ code: 0x87 })
      await expect(d1.client.publishAsync(outside, "q2", { qos: 2 })).rejects.toMatchObject({ code: 0x87 })
    } else {
      // 3.1.1 cannot say no: acknowledged (the QoS 2 flow completes), never routed
      await d1.client.publishAsync(outside, "q1", { qos: 1 })
      await d1.client.publishAsync(outside, "q2", { qos: 2 })
    }
    await d1.client.publishAsync(outside, "q0", { qos: 0 })
    await d1.client.publishAsync(`devices/${v}-d1/own`, "fine", { qos: 1 })
    await d2.client.publishAsync(`devices/${v}-d2/marker`, "m", { qos: 1 })
    await waitFor(d2.received, `devices/${v}-d2/marker`)
    expect(d2.received.map((m) => m.topic)).toEqual([`devices/${v}-d2/marker`])
  })

  it("a message on a topic denied to the subscriber is not delivered to it, retained or not", async () => {
    const { url } = await startBroker(aclFile(ACL))
    const admin = await connect(url, version, `${v}-admin`, "admin")
    await admin.client.publishAsync("test/nosubscribe", "retained secret", { qos: 1, retain: true })
    await admin.client.publishAsync("test/open", "retained open", { qos: 1, retain: true })

    const reader = await connect(url, version, `${v}-reader`)
    expect(await grantedOf(reader.client, ["test/#"])).toEqual([1])
    await waitFor(reader.received, "test/open")
    await admin.client.publishAsync("test/nosubscribe", "live secret", { qos: 1 })
    await admin.client.publishAsync("test/marker", "m", { qos: 1 })
    await waitFor(reader.received, "test/marker")
    expect(reader.received.map((m) => m.topic)).toEqual(["test/open", "test/marker"])
  })
})

describe("ACL file and wills", () => {
  it.each([4, 5] as const)("MQTT %s: a will on a topic the client may not write refuses the CONNECT (5 / 0x87)", async (version) => {
    const { url } = await startBroker(aclFile(ACL))
    const refused = mqtt.connectAsync(url, {
      protocolVersion: version,
      clientId: `will-${version}`,
      reconnectPeriod: 0,
      will: { topic: "test/open", payload: Buffer.from("gone"), qos: 0, retain: false }
    })
    await expect(refused).rejects.toMatchObject({ code: version === 5 ? 0x87 : 5 })
    const allowed = await mqtt.connectAsync(url, {
      protocolVersion: version,
      clientId: `will-ok-${version}`,
      reconnectPeriod: 0,
      will: { topic: "public/status", payload: Buffer.from("gone"), qos: 0, retain: false }
    })
    cleanups.push(() => allowed.endAsync(true))
    expect(allowed.connected).toBe(true)
  })
})

describe("ACL file and offline sessions", () => {
  it("a message for an offline session is checked as its user, and queued when that user may read it", async () => {
    const { url } = await startBroker(aclFile(ACL))
    const first = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: "carol-1", username: "carol", clean: false, reconnectPeriod: 0 })
    expect(await grantedOf(first, ["carol/#"])).toEqual([1])
    await first.endAsync()
    const admin = await connect(url, 4, "admin-offline", "admin")
    // anonymous clients may not read carol/#: queued only if the session is checked as carol
    await admin.client.publishAsync("carol/x", "for carol", { qos: 1 })

    // the handler is in place before CONNECT: the queued message follows CONNACK at once
    const again = mqtt.connect(url, { protocolVersion: 4, clientId: "carol-1", username: "carol", clean: false, reconnectPeriod: 0 })
    cleanups.push(() => again.endAsync(true))
    const received: Array<{ topic: string }> = []
    again.on("message", (topic) => received.push({ topic }))
    await waitFor(received, "carol/x")
    await admin.client.publishAsync("carol/marker", "m", { qos: 1 })
    await waitFor(received, "carol/marker")
    const topics = received.map((m) => m.topic)
    expect(topics).toEqual(["carol/x", "carol/marker"])
  })
})

describe("ACL file reload", () => {
  it("a reload applies new rules to connected clients; a bad file keeps the old rules", async () => {
    const path = aclFile(ACL)
    const { acl, url } = await startBroker(path)
    const { client } = await connect(url, 5, "reload-1")
    expect(await grantedOf(client, ["extra/x"])).toEqual([0x87])

    writeFileSync(path, `${ACL}\npattern read extra/#\n`)
    await Effect.runPromise(acl.reload)
    expect(client.connected).toBe(true)
    expect(await grantedOf(client, ["extra/x"])).toEqual([1])

    writeFileSync(path, "topic read a\nbogus\n")
    const failed = await Effect.runPromiseExit(acl.reload)
    expect(Exit.isFailure(failed) && failed.cause.toString()).toContain("line 2")
    expect(await grantedOf(client, ["extra/y", "a"])).toEqual([1, 0x87])
  })

  it("a bad file at start is an AclFileError naming the line", async () => {
    const exit = await Effect.runPromiseExit(AclAuthorizer.load(aclFile("topic read ok\n\ntopic read a/#/b\n")))
    expect(Exit.isFailure(exit)).toBe(true)
    const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
    expect(error).toMatchObject({ _tag: "Fail", error: { _tag: "AclFileError", reason: "invalid", line: 3 } })
    const missing = await Effect.runPromiseExit(AclAuthorizer.load(join(tmpdir(), "no-such-acl-file")))
    expect(Exit.isFailure(missing) && String(missing.cause)).toContain("cannot be read (ENOENT)")
  })
})
