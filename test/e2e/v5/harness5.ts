/**
 * MQTT 5 end-to-end helpers, on top of `../harness.ts`.
 *
 * - `startBroker5` starts our broker with the MQTT 5 options, or (with
 *   `E2E_PEER=mosquitto`) an Eclipse Mosquitto process configured to match, so
 *   the suite can be validated against a reference implementation.
 * - `useE2E5()` tracks brokers / clients / raw sockets per test (cleanup in `afterEach`).
 * - `Client5` is the harness's mqtt.js wrapper speaking protocol version 5 (CONNECT
 *   properties, will properties, subscription options, publish properties,
 *   server DISCONNECT capture, topic aliases resolved from the wire packets).
 * - `RawClient5` is the harness's raw socket client, MQTT 5 by default, with a
 *   CONNECT helper; like `RawClient` it keeps the raw bytes of every received
 *   packet next to its decoded form, so tests can look at property order and at
 *   exactly what went over the wire.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Option } from "effect"
import mqtt from "mqtt"
import type { IClientSubscribeOptions, MqttClient } from "mqtt"
import type { IConnackPacket, IConnectPacket, IDisconnectPacket, IPublishPacket, QoS } from "mqtt-packet"
import { startTestBroker, type TestBroker } from "../../support/TestBroker.ts"
import {
  ClientBase,
  type ClientOptions,
  type ConnectOptions,
  definedOnly,
  encodePacket,
  encodeString,
  encodeU16,
  encodeVarInt,
  mqttOptions,
  type PublishProperties,
  RawClient,
  readVarInt,
  type ReceivedMessage,
  type RunningBroker,
  sleep,
  type TestBrokerOptions,
  type TestClient,
  tracked,
  trackedRaw,
  uniqueId,
  useE2E
} from "../harness.ts"

export type { ConnectProperties, PublishProperties, WillProperties } from "../harness.ts"

// ---------------------------------------------------------------------------
// Broker under test
// ---------------------------------------------------------------------------

export type Peer = "ours" | "mosquitto"

/** Which broker the suite runs against (`E2E_PEER=mosquitto` for the reference broker). */
export const peer: Peer = process.env["E2E_PEER"] === "mosquitto" ? "mosquitto" : "ours"

export interface Broker5Options extends TestBrokerOptions {
  /** Seconds; 0 = no limit. Longer (or 0) client keepalives get a Server Keep Alive. */
  readonly maxKeepalive?: number
  /** The broker's inbound Receive Maximum. */
  readonly receiveMaximum?: number
  readonly maximumQos?: 0 | 1 | 2
  readonly retainAvailable?: boolean
  /** Topic aliases a client may use towards the broker. */
  readonly topicAliasMaximum?: number
  /** Session expiry (seconds) of 3.1.1 clean=0 sessions. */
  readonly persistentSessionExpiry?: number
}

export interface Broker5 extends RunningBroker {
  readonly peer: Peer
  /** Our broker's log lines; undefined for Mosquitto. */
  readonly logs: ReadonlyArray<string> | undefined
  /** Our broker's session store; undefined for Mosquitto. */
  readonly provider: TestBroker["provider"] | undefined
  /** Output of the Mosquitto process (for debugging failures); empty for ours. */
  readonly output: ReadonlyArray<string>
}

/** Starts the broker under test on 127.0.0.1 and a free port. */
export async function startBroker5(options: Broker5Options = {}): Promise<Broker5> {
  return peer === "mosquitto" ? startMosquitto(options) : startOurs(options)
}

async function startOurs(options: Broker5Options): Promise<Broker5> {
  const broker = await startTestBroker(definedOnly(options))
  let stopped: Promise<void> | undefined
  return {
    peer: "ours",
    port: broker.port,
    url: broker.url,
    logs: broker.logs,
    provider: broker.provider,
    output: [],
    stop: () => (stopped ??= broker.stop())
  }
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const unsupported = (what: string): never => {
  throw new Error(`E2E_PEER=mosquitto: Mosquitto has no equivalent of ${what}`)
}

/** The mosquitto.conf lines matching `options`. */
function mosquittoConfig(port: number, options: Broker5Options): string {
  const global: Array<string> = ["allow_anonymous true", "persistence false", "log_dest stdout", "log_type all"]
  const listener: Array<string> = [`listener ${port} 127.0.0.1`]
  if (options.maxKeepalive !== undefined && options.maxKeepalive > 0) global.push(`max_keepalive ${options.maxKeepalive}`)
  // Mosquitto's max_inflight_messages is both its outbound window and the
  // Receive Maximum it advertises for inbound messages.
  const inflight = options.receiveMaximum ?? options.maxInflightMessages
  if (
    options.receiveMaximum !== undefined && options.maxInflightMessages !== undefined &&
    options.receiveMaximum !== options.maxInflightMessages
  ) {
    unsupported("different receiveMaximum and maxInflightMessages")
  }
  if (inflight !== undefined) global.push(`max_inflight_messages ${inflight}`)
  if (options.maxQueuedMessages !== undefined) global.push(`max_queued_messages ${options.maxQueuedMessages}`)
  if (options.retainAvailable !== undefined) global.push(`retain_available ${options.retainAvailable}`)
  if (options.maxPacketSize !== undefined) global.push(`max_packet_size ${options.maxPacketSize}`)
  if (options.persistentSessionExpiry !== undefined && options.persistentSessionExpiry !== 0xffff_ffff) {
    if (options.persistentSessionExpiry % 3600 !== 0 || options.persistentSessionExpiry === 0) {
      unsupported(`persistentSessionExpiry=${options.persistentSessionExpiry} (whole hours only)`)
    }
    global.push(`persistent_client_expiration ${options.persistentSessionExpiry / 3600}h`)
  }
  if (options.connectTimeoutMs !== undefined) unsupported("connectTimeoutMs")
  if (options.maximumQos !== undefined) listener.push(`max_qos ${options.maximumQos}`)
  if (options.topicAliasMaximum !== undefined) listener.push(`max_topic_alias ${options.topicAliasMaximum}`)
  return [...global, ...listener, ""].join("\n")
}

async function startMosquitto(options: Broker5Options): Promise<Broker5> {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mosq5-"))
  const configFile = path.join(dir, "mosquitto.conf")
  fs.writeFileSync(configFile, mosquittoConfig(port, options))
  const output: Array<string> = []
  const child = spawn("/usr/sbin/mosquitto", ["-c", configFile], { stdio: ["ignore", "pipe", "pipe"] })
  const collect = (chunk: Buffer) => output.push(...chunk.toString("utf8").split("\n").filter((line) => line !== ""))
  child.stdout.on("data", collect)
  child.stderr.on("data", collect)
  let exited = false
  const exit = new Promise<void>((resolve) => {
    child.once("exit", () => {
      exited = true
      resolve()
    })
  })
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true })

  // Ready once it accepts TCP connections.
  const deadline = Date.now() + 5_000
  for (;;) {
    if (exited) {
      cleanup()
      throw new Error(`mosquitto exited during start-up:\n${output.join("\n")}`)
    }
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ port, host: "127.0.0.1" })
      socket.once("connect", () => {
        socket.destroy()
        resolve(true)
      })
      socket.once("error", () => resolve(false))
    })
    if (ok) break
    if (Date.now() > deadline) {
      child.kill("SIGKILL")
      cleanup()
      throw new Error(`mosquitto did not start listening on ${port}:\n${output.join("\n")}`)
    }
    await sleep(20)
  }

  let stopped: Promise<void> | undefined
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM")
      await Promise.race([exit, sleep(3_000)])
      if (!exited) {
        child.kill("SIGKILL")
        await exit
      }
    }
    cleanup()
  }
  return {
    peer: "mosquitto",
    port,
    url: `mqtt://127.0.0.1:${port}`,
    logs: undefined,
    provider: undefined,
    output,
    stop: () => (stopped ??= stop())
  }
}

/**
 * Whether our broker's session store holds a session for `clientId`;
 * `undefined` when the broker under test has no inspectable store (Mosquitto).
 */
export async function hasStoredSession(broker: Broker5, clientId: string): Promise<boolean | undefined> {
  if (broker.provider === undefined) return undefined
  const stored = await Effect.runPromise(broker.provider.get(clientId))
  return Option.isSome(stored)
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/** A unique client id (short enough for any broker). */
export const id5 = (prefix = "v"): string => uniqueId(prefix)

/** Subscription identifiers of a PUBLISH as a sorted array. */
export const subscriptionIds = (properties: IPublishPacket["properties"] | undefined): Array<number> => {
  const value = properties?.subscriptionIdentifier
  if (value === undefined) return []
  return (Array.isArray(value) ? [...value] : [value]).sort((a, b) => a - b)
}

// ---------------------------------------------------------------------------
// mqtt.js client speaking MQTT 5
// ---------------------------------------------------------------------------

export type Client5Options = ConnectOptions
export type Will5 = NonNullable<ConnectOptions["will"]>

export interface Message5 extends ReceivedMessage {
  /** Topic after resolving a topic alias (resolved by this harness from the wire packets). */
  readonly topic: string
  /** The topic name exactly as in the PUBLISH packet ("" when only an alias was sent). */
  readonly packetTopic: string
  readonly payloadBytes: Buffer
  readonly properties: PublishProperties
}

export interface SubscribeOptions5 {
  readonly qos?: QoS
  readonly nl?: boolean
  readonly rap?: boolean
  readonly rh?: 0 | 1 | 2
}

export class Client5 extends ClientBase<Message5> {
  /** Messages as mqtt.js hands them to the application ("message" event; topic aliases resolved by mqtt.js). */
  readonly delivered: Array<{ readonly topic: string; readonly payload: string }> = []
  /** DISCONNECT sent by the server, if any. */
  serverDisconnect: IDisconnectPacket | undefined
  private readonly aliases = new Map<number, string>()

  private constructor(mqttClient: MqttClient) {
    super(mqttClient)
    mqttClient.on("packetreceive", (packet) => {
      if (packet.cmd !== "disconnect") return
      this.serverDisconnect = packet
      this.changes.notify()
    })
    mqttClient.on("message", (topic, payload) => {
      this.delivered.push({ topic, payload: payload.toString("utf8") })
      this.changes.notify()
    })
  }

  static create(broker: RunningBroker, options: Client5Options = {}): { client: Client5; ready: Promise<Client5> } {
    const client = new Client5(mqtt.connect(broker.url, mqttOptions(5, options, id5)))
    return { client, ready: client.whenConnected() }
  }

  protected override toMessage(packet: IPublishPacket): Message5 {
    const properties = packet.properties ?? {}
    let topic = packet.topic
    const alias = properties.topicAlias
    if (alias !== undefined) {
      if (topic === "") topic = this.aliases.get(alias) ?? ""
      else this.aliases.set(alias, topic)
    }
    const payloadBytes = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
    return {
      topic,
      packetTopic: packet.topic,
      payload: payloadBytes.toString("utf8"),
      payloadBytes,
      qos: packet.qos,
      retain: packet.retain,
      dup: packet.dup,
      properties
    }
  }

  /**
   * Subscribes (one SUBSCRIBE packet) and resolves with the SUBACK reason code
   * of each filter, failures included.
   */
  async subscribe(
    filters: string | Record<string, SubscribeOptions5>,
    options: SubscribeOptions5 & { readonly subscriptionIdentifier?: number } = {}
  ): Promise<Array<number>> {
    const map: Record<string, IClientSubscribeOptions> = {}
    const entries: Array<[string, SubscribeOptions5]> = typeof filters === "string"
      ? [[filters, options]]
      : Object.entries(filters)
    for (const [topic, sub] of entries) {
      map[topic] = { qos: sub.qos ?? 0, nl: sub.nl ?? false, rap: sub.rap ?? false, rh: sub.rh ?? 0 }
    }
    const subscribeOptions: IClientSubscribeOptions | undefined = options.subscriptionIdentifier === undefined
      ? undefined
      : { qos: 0, properties: { subscriptionIdentifier: options.subscriptionIdentifier } }
    const subscribed = new Promise<Array<number>>((resolve, reject) => {
      const callback = (error: Error | null, _granted?: unknown, packet?: { granted: Array<number> | Array<object> }) => {
        if (packet !== undefined) resolve(packet.granted.map((g) => (typeof g === "number" ? g : -1)))
        else reject(error ?? new Error("no SUBACK"))
      }
      if (subscribeOptions === undefined) this.mqtt.subscribe(map, callback)
      else this.mqtt.subscribe(map, subscribeOptions, callback)
    })
    return this.untilClosed(`SUBSCRIBE ${Object.keys(map).join(", ")}`, subscribed)
  }

  /** Waits until mqtt.js delivered `count` messages to the application. */
  async waitForDelivered(count: number, timeoutMs = 2_000): Promise<Array<{ topic: string; payload: string }>> {
    return this.waitFor(
      () => (this.delivered.length >= count ? [...this.delivered] : undefined),
      timeoutMs,
      () => `expected ${count} delivered message(s) on ${this.clientId}, got ${JSON.stringify(this.delivered)}`
    )
  }

  /** Waits for a DISCONNECT from the server. */
  async waitForServerDisconnect(timeoutMs = 2_000): Promise<IDisconnectPacket> {
    return this.waitFor(
      () => {
        if (this.serverDisconnect !== undefined) return this.serverDisconnect
        if (this.closedFlag) throw new Error(`connection of ${this.clientId} closed without a DISCONNECT from the server`)
        return undefined
      },
      timeoutMs,
      () => `no DISCONNECT from the server on ${this.clientId}`
    )
  }
}

// ---------------------------------------------------------------------------
// Raw socket client (MQTT 5 or 3.1.1 framing)
// ---------------------------------------------------------------------------

export type RawConnect5 = Omit<IConnectPacket, "cmd" | "clientId" | "protocolVersion" | "protocolId"> & {
  readonly clientId?: string
}

/** `RawClient`, MQTT 5 unless opened for 3.1.1, plus CONNECT / DISCONNECT helpers. */
export class RawClient5 extends RawClient {
  static override async open(port: number, protocolVersion: 4 | 5 = 5): Promise<RawClient5> {
    return new RawClient5(await RawClient.connectSocket(port), protocolVersion)
  }

  /** Sends CONNECT (MQTT 5 unless this is a 3.1.1 connection). */
  connect(connect: RawConnect5): void {
    this.send({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: this.protocolVersion,
      clean: true,
      keepalive: 60,
      ...connect,
      clientId: connect.clientId ?? id5("raw")
    })
  }

  /** Waits for the broker's DISCONNECT (consumes it). */
  async nextDisconnect(timeoutMs = 2_000): Promise<IDisconnectPacket> {
    return (await this.next("disconnect", timeoutMs)) as IDisconnectPacket
  }
}

// ---------------------------------------------------------------------------
// Hand-rolled encoding / decoding of MQTT 5 properties
// ---------------------------------------------------------------------------

type PropertyType = "byte" | "int16" | "int32" | "varint" | "string" | "binary" | "pair"

/** Property identifier → wire type (MQTT 5.0 section 2.2.2.2). */
const PROPERTY_TYPES: Readonly<Record<number, PropertyType>> = {
  0x01: "byte", // Payload Format Indicator
  0x02: "int32", // Message Expiry Interval
  0x03: "string", // Content Type
  0x08: "string", // Response Topic
  0x09: "binary", // Correlation Data
  0x0b: "varint", // Subscription Identifier
  0x11: "int32", // Session Expiry Interval
  0x12: "string", // Assigned Client Identifier
  0x13: "int16", // Server Keep Alive
  0x15: "string", // Authentication Method
  0x16: "binary", // Authentication Data
  0x17: "byte", // Request Problem Information
  0x18: "int32", // Will Delay Interval
  0x19: "byte", // Request Response Information
  0x1a: "string", // Response Information
  0x1c: "string", // Server Reference
  0x1f: "string", // Reason String
  0x21: "int16", // Receive Maximum
  0x22: "int16", // Topic Alias Maximum
  0x23: "int16", // Topic Alias
  0x24: "byte", // Maximum QoS
  0x25: "byte", // Retain Available
  0x26: "pair", // User Property
  0x27: "int32", // Maximum Packet Size
  0x28: "byte", // Wildcard Subscription Available
  0x29: "byte", // Subscription Identifier Available
  0x2a: "byte" // Shared Subscription Available
}

export interface RawProperty {
  readonly id: number
  readonly value: number | string | Buffer | readonly [string, string]
}

/** Decodes a property section (length prefix included) at `offset`, keeping the wire order. */
export function decodeProperties(buffer: Buffer, offset: number): Array<RawProperty> {
  const length = readVarInt(buffer, offset)
  if (length === undefined) throw new Error("truncated property length")
  let position = offset + length.size
  const end = position + length.value
  const readBinary = (): Buffer => {
    const size = buffer.readUInt16BE(position)
    const value = buffer.subarray(position + 2, position + 2 + size)
    position += 2 + size
    return value
  }
  const readString = (): string => readBinary().toString("utf8")
  const properties: Array<RawProperty> = []
  while (position < end) {
    const id = buffer[position]!
    position += 1
    const type = PROPERTY_TYPES[id]
    switch (type) {
      case "byte":
        properties.push({ id, value: buffer[position]! })
        position += 1
        break
      case "int16":
        properties.push({ id, value: buffer.readUInt16BE(position) })
        position += 2
        break
      case "int32":
        properties.push({ id, value: buffer.readUInt32BE(position) })
        position += 4
        break
      case "varint": {
        const v = readVarInt(buffer, position)
        if (v === undefined) throw new Error("truncated varint property")
        properties.push({ id, value: v.value })
        position += v.size
        break
      }
      case "string":
        properties.push({ id, value: readString() })
        break
      case "binary":
        properties.push({ id, value: Buffer.from(readBinary()) })
        break
      case "pair": {
        const key = readString()
        properties.push({ id, value: [key, readString()] as const })
        break
      }
      default:
        throw new Error(`unknown property identifier 0x${id.toString(16)}`)
    }
  }
  return properties
}

/** The properties of a raw MQTT 5 PUBLISH packet, in wire order. */
export function publishFrameProperties(frame: Buffer): Array<RawProperty> {
  const qos = (frame[0]! >> 1) & 0x03
  const length = readVarInt(frame, 1)
  if (length === undefined) throw new Error("truncated PUBLISH")
  let position = 1 + length.size
  const topicLength = frame.readUInt16BE(position)
  position += 2 + topicLength
  if (qos > 0) position += 2
  return decodeProperties(frame, position)
}

/** User Property pairs of a raw MQTT 5 PUBLISH packet, in wire order. */
export function publishFrameUserProperties(frame: Buffer): Array<readonly [string, string]> {
  return publishFrameProperties(frame)
    .filter((p) => p.id === 0x26)
    .map((p) => p.value as readonly [string, string])
}

/** One encoded User Property. */
export const userProperty = (key: string, value: string): Buffer => Buffer.concat([Buffer.from([0x26]), encodeString(key), encodeString(value)])

/** Hand-encodes an MQTT 5 PUBLISH whose property section is exactly `properties` (concatenated encoded properties). */
export function encodePublish5(options: {
  readonly topic: string
  readonly payload: string | Buffer
  readonly qos?: QoS
  readonly messageId?: number
  readonly retain?: boolean
  readonly properties?: ReadonlyArray<Buffer>
}): Buffer {
  const qos = options.qos ?? 0
  const properties = Buffer.concat([...(options.properties ?? [])])
  const parts: Array<Buffer> = [encodeString(options.topic)]
  if (qos > 0) parts.push(encodeU16(options.messageId ?? 1))
  parts.push(encodeVarInt(properties.length), properties)
  parts.push(Buffer.isBuffer(options.payload) ? options.payload : Buffer.from(options.payload, "utf8"))
  return encodePacket(0x30 | (qos << 1) | ((options.retain ?? false) ? 1 : 0), Buffer.concat(parts))
}

// ---------------------------------------------------------------------------
// Per-test resource tracking
// ---------------------------------------------------------------------------

export interface E2E5 {
  /** Starts the broker under test (stopped after the test). */
  broker(options?: Broker5Options): Promise<Broker5>
  /** Connects an MQTT 5 mqtt.js client (waits for a successful CONNACK). */
  client(broker: RunningBroker, options?: Client5Options): Promise<Client5>
  /** Connects an MQTT 3.1.1 mqtt.js client (the harness's TestClient). */
  client4(broker: RunningBroker, options?: ClientOptions): Promise<TestClient>
  /** Opens a raw socket (no CONNECT sent). */
  raw(broker: RunningBroker, protocolVersion?: 4 | 5): Promise<RawClient5>
  /** Opens a raw socket, sends CONNECT and waits for the CONNACK. */
  rawConnect(
    broker: RunningBroker,
    connect?: RawConnect5,
    protocolVersion?: 4 | 5
  ): Promise<{ raw: RawClient5; connack: IConnackPacket }>
  defer(cleanup: () => void | Promise<void>): void
}

/** Call once at the top level of a test file. */
export function useE2E5(): E2E5 {
  const base = useE2E()
  const raw = (broker: RunningBroker, protocolVersion: 4 | 5 = 5) =>
    trackedRaw(base.defer, RawClient5.open(broker.port, protocolVersion))
  return {
    defer: base.defer,
    broker: async (options) => {
      const broker = await startBroker5(options)
      base.defer(() => broker.stop())
      return broker
    },
    client: (broker, options) => tracked(base.defer, Client5.create(broker, options)),
    client4: (broker, options) => base.client(broker, options),
    raw,
    rawConnect: async (broker, connect = {}, protocolVersion = 5) => {
      const client = await raw(broker, protocolVersion)
      client.connect(connect)
      const connack = (await client.next("connack")) as IConnackPacket
      return { raw: client, connack }
    }
  }
}
