/**
 * MQTT 5 end-to-end helpers, on top of `../harness.ts`.
 *
 * - `startBroker5` starts our broker with the MQTT 5 options, or (with
 *   `E2E_PEER=mosquitto`) an Eclipse Mosquitto process configured to match, so
 *   the suite can be validated against a reference implementation.
 * - `useE2E5()` tracks brokers / clients / raw sockets per test (cleanup in `afterEach`).
 * - `Client5` wraps an mqtt.js client speaking protocol version 5 (CONNECT
 *   properties, will properties, subscription options, publish properties,
 *   server DISCONNECT capture).
 * - `RawClient5` speaks MQTT over a bare socket and keeps the raw bytes of every
 *   received packet next to its decoded form, so tests can look at property order
 *   and at exactly what went over the wire.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Option } from "effect"
import mqtt from "mqtt"
import type { IClientOptions, IClientPublishOptions, IClientSubscribeOptions, MqttClient } from "mqtt"
import { generate, parser } from "mqtt-packet"
import type {
  IConnackPacket,
  IConnectPacket,
  IDisconnectPacket,
  IPublishPacket,
  Packet,
  PacketCmd,
  QoS
} from "mqtt-packet"
import type { BrokerConfig } from "../../../src/config/BrokerConfig.ts"
import { startTestBroker, type TestBroker } from "../../support/TestBroker.ts"
import { type ClientOptions, type RunningBroker, settle, sleep, type TestClient, useE2E } from "../harness.ts"

// ---------------------------------------------------------------------------
// Broker under test
// ---------------------------------------------------------------------------

export type Peer = "ours" | "mosquitto"

/** Which broker the suite runs against (`E2E_PEER=mosquitto` for the reference broker). */
export const peer: Peer = process.env["E2E_PEER"] === "mosquitto" ? "mosquitto" : "ours"

export interface Broker5Options {
  /** Seconds; 0 = no limit. Longer (or 0) client keepalives get a Server Keep Alive. */
  readonly maxKeepalive?: number
  /** The broker's inbound Receive Maximum. */
  readonly receiveMaximum?: number
  readonly maximumQos?: 0 | 1 | 2
  readonly retainAvailable?: boolean
  /** Topic aliases a client may use towards the broker. */
  readonly topicAliasMaximum?: number
  /** Largest inbound packet (bytes). */
  readonly maxPacketSize?: number
  /** Session expiry (seconds) of 3.1.1 clean=0 sessions. */
  readonly persistentSessionExpiry?: number
  readonly maxInflightMessages?: number
  readonly maxQueuedMessages?: number
  readonly connectTimeoutMs?: number
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
  // Built as a plain record: the MQTT 5 fields are being added to BrokerConfig
  // while this suite is written.
  const config: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) config[key] = value
  }
  const broker = await startTestBroker(config as Partial<BrokerConfig>)
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

let counter = 0
const BARRIER_PREFIX = "barrier-"
/** A unique client id (short enough for any broker). */
export const id5 = (prefix = "v"): string => `${prefix}${process.pid % 1000}-${++counter}`

/** Polls `check` on every change notification until it yields a value or `timeoutMs` passes. */
function waitFor<A>(
  check: () => A | undefined,
  subscribe: (wake: () => void) => () => void,
  timeoutMs: number,
  describe: () => string
): Promise<A> {
  const first = check()
  if (first !== undefined) return Promise.resolve(first)
  return new Promise<A>((resolve, reject) => {
    const finish = (outcome: () => void) => {
      clearTimeout(timer)
      unsubscribe()
      outcome()
    }
    const unsubscribe = subscribe(() => {
      try {
        const value = check()
        if (value !== undefined) finish(() => resolve(value))
      } catch (error) {
        finish(() => reject(error))
      }
    })
    const timer = setTimeout(() => finish(() => reject(new Error(`timed out after ${timeoutMs} ms: ${describe()}`))), timeoutMs)
  })
}

class Notifier {
  private readonly listeners = new Set<() => void>()
  notify(): void {
    for (const listener of [...this.listeners]) listener()
  }
  readonly subscribe = (wake: () => void): (() => void) => {
    this.listeners.add(wake)
    return () => this.listeners.delete(wake)
  }
}

/** Subscription identifiers of a PUBLISH as a sorted array. */
export const subscriptionIds = (properties: IPublishPacket["properties"] | undefined): Array<number> => {
  const value = properties?.subscriptionIdentifier
  if (value === undefined) return []
  return (Array.isArray(value) ? [...value] : [value]).sort((a, b) => a - b)
}

interface BarrierPublisher {
  publish(topic: string, payload: string, options: { qos: QoS }): Promise<unknown>
}
interface BarrierSubscriber {
  waitForMessage(topic: string, payload?: string, timeoutMs?: number): Promise<unknown>
}

/**
 * "Nothing (else) arrives" barrier: `publisher` publishes a unique marker at QoS 1
 * on `topic` (which `subscriber` is subscribed to) and waits until the subscriber
 * got it; anything the same publisher sent before had its chance by then.
 */
export async function barrier5(publisher: BarrierPublisher, subscriber: BarrierSubscriber, topic: string): Promise<void> {
  const marker = `${BARRIER_PREFIX}${++counter}`
  await publisher.publish(topic, marker, { qos: 1 })
  await subscriber.waitForMessage(topic, marker)
  await settle()
}

// ---------------------------------------------------------------------------
// mqtt.js client speaking MQTT 5
// ---------------------------------------------------------------------------

export type ConnectProperties = NonNullable<IConnectPacket["properties"]>
export type WillProperties = NonNullable<NonNullable<IConnectPacket["will"]>["properties"]>
export type PublishProperties = NonNullable<IPublishPacket["properties"]>

export interface Will5 {
  readonly topic: string
  readonly payload: string | Buffer
  readonly qos?: QoS
  readonly retain?: boolean
  readonly properties?: WillProperties
}

export interface Client5Options {
  readonly clientId?: string
  /** Clean Start (default true). */
  readonly clean?: boolean
  readonly keepalive?: number
  readonly properties?: ConnectProperties
  readonly will?: Will5
}

export interface Message5 {
  /** Topic after resolving a topic alias (resolved by this harness from the wire packets). */
  readonly topic: string
  /** The topic name exactly as in the PUBLISH packet ("" when only an alias was sent). */
  readonly packetTopic: string
  readonly payload: string
  readonly payloadBytes: Buffer
  readonly qos: QoS
  readonly retain: boolean
  readonly dup: boolean
  readonly properties: PublishProperties
}

export interface SubscribeOptions5 {
  readonly qos?: QoS
  readonly nl?: boolean
  readonly rap?: boolean
  readonly rh?: 0 | 1 | 2
}

export class Client5 {
  /** Every PUBLISH received, in arrival order (recorded when the packet arrives). */
  readonly messages: Array<Message5> = []
  /** Messages as mqtt.js hands them to the application ("message" event; topic aliases resolved by mqtt.js). */
  readonly delivered: Array<{ readonly topic: string; readonly payload: string }> = []
  /** CONNACK of the successful connect. */
  connack!: IConnackPacket
  /** DISCONNECT sent by the server, if any. */
  serverDisconnect: IDisconnectPacket | undefined
  readonly closed: Promise<void>
  readonly mqtt: MqttClient
  private closedFlag = false
  private readonly changes = new Notifier()
  private readonly aliases = new Map<number, string>()

  private constructor(mqttClient: MqttClient) {
    this.mqtt = mqttClient
    mqttClient.on("packetreceive", (packet) => {
      if (packet.cmd === "disconnect") {
        this.serverDisconnect = packet
        this.changes.notify()
        return
      }
      if (packet.cmd !== "publish") return
      const properties = packet.properties ?? {}
      let topic = packet.topic
      const alias = properties.topicAlias
      if (alias !== undefined) {
        if (topic === "") topic = this.aliases.get(alias) ?? ""
        else this.aliases.set(alias, topic)
      }
      const payloadBytes = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
      this.messages.push({
        topic,
        packetTopic: packet.topic,
        payload: payloadBytes.toString("utf8"),
        payloadBytes,
        qos: packet.qos,
        retain: packet.retain,
        dup: packet.dup,
        properties
      })
      this.changes.notify()
    })
    mqttClient.on("message", (topic, payload) => {
      this.delivered.push({ topic, payload: payload.toString("utf8") })
      this.changes.notify()
    })
    this.closed = new Promise((resolve) => {
      mqttClient.on("close", () => {
        this.closedFlag = true
        this.changes.notify()
        resolve()
      })
    })
    mqttClient.on("error", () => {})
  }

  static create(broker: RunningBroker, options: Client5Options = {}): { client: Client5; ready: Promise<Client5> } {
    const mqttOptions: IClientOptions = {
      clientId: options.clientId ?? id5(),
      clean: options.clean ?? true,
      protocolVersion: 5,
      protocolId: "MQTT",
      keepalive: options.keepalive ?? 30,
      reconnectPeriod: 0,
      connectTimeout: 3_000,
      resubscribe: false
    }
    if (options.properties !== undefined) mqttOptions.properties = { ...options.properties }
    if (options.will !== undefined) {
      mqttOptions.will = {
        topic: options.will.topic,
        payload: Buffer.isBuffer(options.will.payload) ? options.will.payload : Buffer.from(options.will.payload),
        qos: options.will.qos ?? 0,
        retain: options.will.retain ?? false,
        ...(options.will.properties === undefined ? {} : { properties: options.will.properties })
      }
    }
    const client = new Client5(mqtt.connect(broker.url, mqttOptions))
    const ready = new Promise<Client5>((resolve, reject) => {
      const onConnect = (connack: IConnackPacket) => {
        cleanup()
        client.connack = connack
        resolve(client)
      }
      const onError = (error: Error) => {
        cleanup()
        reject(error)
      }
      const onClose = () => {
        cleanup()
        reject(new Error(`connection closed before CONNACK (client ${String(mqttOptions.clientId)})`))
      }
      const cleanup = () => {
        client.mqtt.off("connect", onConnect)
        client.mqtt.off("error", onError)
        client.mqtt.off("close", onClose)
      }
      client.mqtt.on("connect", onConnect)
      client.mqtt.on("error", onError)
      client.mqtt.on("close", onClose)
    })
    return { client, ready }
  }

  get clientId(): string {
    return this.mqtt.options.clientId ?? ""
  }

  get isClosed(): boolean {
    return this.closedFlag
  }

  private untilClosed<A>(what: string, operation: Promise<A>): Promise<A> {
    const closed = this.closed.then(() => {
      throw new Error(`connection of ${this.clientId} closed during ${what}`)
    })
    return Promise.race([operation, closed])
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

  /** Unsubscribes and resolves with the UNSUBACK reason codes. */
  async unsubscribe(filters: string | Array<string>): Promise<Array<number>> {
    const unsubscribed = new Promise<Array<number>>((resolve, reject) => {
      this.mqtt.unsubscribe(filters, (error, packet) => {
        if (error) reject(error)
        else if (packet === undefined || packet.cmd !== "unsuback") reject(new Error("no UNSUBACK received"))
        else resolve([...(packet.granted ?? [])])
      })
    })
    return this.untilClosed(`UNSUBSCRIBE ${String(filters)}`, unsubscribed)
  }

  /** Publishes; resolves when the QoS flow completes, rejects on a failure reason code. */
  async publish(
    topic: string,
    payload: string | Buffer,
    options: { qos?: QoS; retain?: boolean; properties?: PublishProperties } = {}
  ): Promise<void> {
    const publishOptions: IClientPublishOptions = { qos: options.qos ?? 0, retain: options.retain ?? false }
    if (options.properties !== undefined) publishOptions.properties = options.properties
    const published = new Promise<void>((resolve, reject) => {
      this.mqtt.publish(topic, payload, publishOptions, (error) => {
        if (error) reject(error)
        else resolve()
      })
    })
    return this.untilClosed(`PUBLISH ${topic}`, published)
  }

  /** Waits until at least `count` messages (matching `filter`) were received. */
  async waitForMessages(
    count: number,
    options: { timeoutMs?: number; filter?: (m: Message5) => boolean } = {}
  ): Promise<Array<Message5>> {
    const filter = options.filter ?? (() => true)
    return waitFor(
      () => {
        const matching = this.messages.filter(filter)
        return matching.length >= count ? matching : undefined
      },
      this.changes.subscribe,
      options.timeoutMs ?? 2_000,
      () =>
        `expected ${count} message(s) on ${this.clientId}, got ${this.messages.filter(filter).length}: ` +
        JSON.stringify(this.messages.map((m) => `${m.topic}=${m.payload}`))
    )
  }

  /** Waits for the first message on `topic` (optionally with `payload`). */
  async waitForMessage(topic: string, payload?: string, timeoutMs = 2_000): Promise<Message5> {
    const [message] = await this.waitForMessages(1, {
      timeoutMs,
      filter: (m) => m.topic === topic && (payload === undefined || m.payload === payload)
    })
    return message!
  }

  /** Waits until mqtt.js delivered `count` messages to the application. */
  async waitForDelivered(count: number, timeoutMs = 2_000): Promise<Array<{ topic: string; payload: string }>> {
    return waitFor(
      () => (this.delivered.length >= count ? [...this.delivered] : undefined),
      this.changes.subscribe,
      timeoutMs,
      () => `expected ${count} delivered message(s) on ${this.clientId}, got ${JSON.stringify(this.delivered)}`
    )
  }

  /** Messages received on `topic`, without barrier markers. */
  on(topic: string): Array<Message5> {
    return this.messages.filter((m) => m.topic === topic && !m.payload.startsWith(BARRIER_PREFIX))
  }

  /** Payloads received on `topic`, without barrier markers. */
  payloads(topic: string): Array<string> {
    return this.on(topic).map((m) => m.payload)
  }

  /** Waits for a DISCONNECT from the server. */
  async waitForServerDisconnect(timeoutMs = 2_000): Promise<IDisconnectPacket> {
    return waitFor(
      () => {
        if (this.serverDisconnect !== undefined) return this.serverDisconnect
        if (this.closedFlag) throw new Error(`connection of ${this.clientId} closed without a DISCONNECT from the server`)
        return undefined
      },
      this.changes.subscribe,
      timeoutMs,
      () => `no DISCONNECT from the server on ${this.clientId}`
    )
  }

  async waitClosed(timeoutMs = 2_000): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), sleep(timeoutMs).then(() => false)])
  }

  /** Sends DISCONNECT (optionally with a reason code / properties), waits for the close, then settles. */
  async disconnect(options: { reasonCode?: number; properties?: NonNullable<IDisconnectPacket["properties"]> } = {}): Promise<void> {
    if (this.closedFlag) return
    const packet: { reasonCode?: number; properties?: NonNullable<IDisconnectPacket["properties"]> } = {}
    if (options.reasonCode !== undefined) packet.reasonCode = options.reasonCode
    if (options.properties !== undefined) packet.properties = options.properties
    await new Promise<void>((resolve) => this.mqtt.end(false, packet, () => resolve()))
    await this.waitClosed(2_000)
    await settle()
  }

  /** Drops the TCP connection without DISCONNECT. */
  async drop(): Promise<void> {
    if (this.closedFlag) return
    this.mqtt.stream.destroy()
    await this.waitClosed(2_000)
  }

  /** Cleanup: force-close. */
  async forceClose(): Promise<void> {
    if (this.closedFlag) {
      this.mqtt.end(true)
      return
    }
    await Promise.race([new Promise<void>((resolve) => this.mqtt.end(true, {}, () => resolve())), sleep(1_000)])
  }
}

// ---------------------------------------------------------------------------
// Raw socket client (MQTT 5 or 3.1.1 framing)
// ---------------------------------------------------------------------------

export interface Frame {
  readonly packet: Packet
  /** The complete packet as received (fixed header included). */
  readonly bytes: Buffer
}

/** Reads an MQTT Variable Byte Integer at `offset`; undefined when incomplete. */
export function readVarInt(buffer: Buffer, offset: number): { value: number; size: number } | undefined {
  let value = 0
  let multiplier = 1
  for (let i = 0; i < 4; i++) {
    if (offset + i >= buffer.length) return undefined
    const byte = buffer[offset + i]!
    value += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) return { value, size: i + 1 }
    multiplier *= 128
  }
  throw new Error("variable byte integer longer than 4 bytes")
}

export type RawConnect5 = Omit<IConnectPacket, "cmd" | "clientId" | "protocolVersion" | "protocolId"> & {
  readonly clientId?: string
}

export class RawClient5 {
  readonly received: Array<Packet> = []
  readonly frames: Array<Frame> = []
  private readonly inbox: Array<Frame> = []
  private readonly changes = new Notifier()
  private closedFlag = false
  private buffered: Buffer = Buffer.alloc(0)
  readonly closed: Promise<void>
  parseError: Error | undefined
  readonly socket: net.Socket
  readonly protocolVersion: 4 | 5

  private constructor(socket: net.Socket, protocolVersion: 4 | 5) {
    this.socket = socket
    this.protocolVersion = protocolVersion
    socket.on("data", (chunk: Buffer) => this.onData(chunk))
    socket.on("error", () => {})
    this.closed = new Promise((resolve) => {
      socket.on("close", () => {
        this.closedFlag = true
        this.changes.notify()
        resolve()
      })
    })
  }

  static open(port: number, protocolVersion: 4 | 5 = 5): Promise<RawClient5> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: "127.0.0.1" })
      socket.once("connect", () => {
        socket.off("error", reject)
        resolve(new RawClient5(socket, protocolVersion))
      })
      socket.once("error", reject)
    })
  }

  private onData(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk])
    for (;;) {
      if (this.buffered.length < 2) return
      let length: { value: number; size: number } | undefined
      try {
        length = readVarInt(this.buffered, 1)
      } catch (error) {
        this.parseError = error as Error
        return
      }
      if (length === undefined) return
      const total = 1 + length.size + length.value
      if (this.buffered.length < total) return
      const bytes = Buffer.from(this.buffered.subarray(0, total))
      this.buffered = this.buffered.subarray(total)
      const packetParser = parser({ protocolVersion: this.protocolVersion })
      let decoded: Packet | undefined
      packetParser.on("packet", (packet: Packet) => {
        decoded = packet
      })
      packetParser.on("error", (error: Error) => {
        this.parseError = error
      })
      packetParser.parse(bytes)
      if (decoded === undefined) continue
      const frame = { packet: decoded, bytes }
      this.received.push(decoded)
      this.frames.push(frame)
      this.inbox.push(frame)
      this.changes.notify()
    }
  }

  get isClosed(): boolean {
    return this.closedFlag
  }

  /** Encodes `packet` for this connection's protocol version and writes it. */
  send(packet: Packet): void {
    this.write(generate(packet, { protocolVersion: this.protocolVersion }))
  }

  write(bytes: Buffer | ReadonlyArray<number>): void {
    if (this.closedFlag || this.socket.destroyed) return
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes))
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

  /** Consumes the next received frame (of type `cmd`, if given). */
  async nextFrame(cmd?: PacketCmd, timeoutMs = 2_000): Promise<Frame> {
    return waitFor(
      () => {
        const index = this.inbox.findIndex((f) => cmd === undefined || f.packet.cmd === cmd)
        if (index === -1) {
          if (this.closedFlag) {
            throw new Error(
              `connection closed while waiting for ${cmd ?? "a packet"}; got ${
                JSON.stringify(this.received.map((p) => p.cmd))
              }`
            )
          }
          return undefined
        }
        return this.inbox.splice(index, 1)[0]
      },
      this.changes.subscribe,
      timeoutMs,
      () => `no ${cmd ?? "packet"} received; got ${JSON.stringify(this.received.map((p) => p.cmd))}`
    )
  }

  /** Consumes the next received packet (of type `cmd`, if given). */
  async next(cmd?: PacketCmd, timeoutMs = 2_000): Promise<Packet> {
    return (await this.nextFrame(cmd, timeoutMs)).packet
  }

  /** Consumes `count` packets of type `cmd`. */
  async take(cmd: PacketCmd, count: number, timeoutMs = 2_000): Promise<Array<Packet>> {
    const deadline = Date.now() + timeoutMs
    const taken: Array<Packet> = []
    while (taken.length < count) taken.push(await this.next(cmd, Math.max(1, deadline - Date.now())))
    return taken
  }

  /** Received, not yet consumed packets (optionally only of type `cmd`). */
  pending(cmd?: PacketCmd): Array<Packet> {
    return this.inbox.map((f) => f.packet).filter((p) => cmd === undefined || p.cmd === cmd)
  }

  /** Waits for the broker's DISCONNECT (consumes it). */
  async nextDisconnect(timeoutMs = 2_000): Promise<IDisconnectPacket> {
    return (await this.next("disconnect", timeoutMs)) as IDisconnectPacket
  }

  async waitClosed(timeoutMs = 2_000): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), sleep(timeoutMs).then(() => false)])
  }

  /** PINGREQ → PINGRESP: everything sent before was processed. */
  async ping(timeoutMs = 2_000): Promise<void> {
    this.send({ cmd: "pingreq" })
    await this.next("pingresp", timeoutMs)
  }

  destroy(): void {
    this.socket.destroy()
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
  const readString = (): string => {
    const size = buffer.readUInt16BE(position)
    const value = buffer.subarray(position + 2, position + 2 + size).toString("utf8")
    position += 2 + size
    return value
  }
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
      case "binary": {
        const size = buffer.readUInt16BE(position)
        properties.push({ id, value: Buffer.from(buffer.subarray(position + 2, position + 2 + size)) })
        position += 2 + size
        break
      }
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

const encodeUtf8 = (value: string): Buffer => {
  const bytes = Buffer.from(value, "utf8")
  const length = Buffer.alloc(2)
  length.writeUInt16BE(bytes.length)
  return Buffer.concat([length, bytes])
}

export const encodeVarInt = (value: number): Buffer => {
  const bytes: Array<number> = []
  do {
    let byte = value % 128
    value = Math.floor(value / 128)
    if (value > 0) byte |= 0x80
    bytes.push(byte)
  } while (value > 0)
  return Buffer.from(bytes)
}

/** One encoded User Property. */
export const userProperty = (key: string, value: string): Buffer => Buffer.concat([Buffer.from([0x26]), encodeUtf8(key), encodeUtf8(value)])

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
  const parts: Array<Buffer> = [encodeUtf8(options.topic)]
  if (qos > 0) {
    const id = Buffer.alloc(2)
    id.writeUInt16BE(options.messageId ?? 1)
    parts.push(id)
  }
  parts.push(encodeVarInt(properties.length), properties)
  parts.push(Buffer.isBuffer(options.payload) ? options.payload : Buffer.from(options.payload, "utf8"))
  const body = Buffer.concat(parts)
  const first = 0x30 | (qos << 1) | ((options.retain ?? false) ? 1 : 0)
  return Buffer.concat([Buffer.from([first]), encodeVarInt(body.length), body])
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
  const raw = async (broker: RunningBroker, protocolVersion: 4 | 5 = 5) => {
    const client = await RawClient5.open(broker.port, protocolVersion)
    base.defer(() => client.destroy())
    return client
  }
  return {
    defer: base.defer,
    broker: async (options) => {
      const broker = await startBroker5(options)
      base.defer(() => broker.stop())
      return broker
    },
    client: async (broker, options) => {
      const { client, ready } = Client5.create(broker, options)
      base.defer(() => client.forceClose())
      await ready
      return client
    },
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
