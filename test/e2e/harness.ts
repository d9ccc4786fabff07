/**
 * End-to-end test harness (MQTT 3.1.1, and the shared core of `v5/harness5.ts`).
 *
 * - `startBroker` starts a broker on an ephemeral loopback port.
 * - `useE2E()` gives a test file a tracker that closes every broker, client and
 *   raw socket created during a test (registered as an `afterEach` hook).
 * - `TestClient` wraps an mqtt.js client (promise-based connect / publish /
 *   subscribe plus a message inbox with timed waits); `ClientBase` is the part
 *   it shares with the MQTT 5 `Client5`.
 * - `RawClient` speaks MQTT over a bare `node:net` socket (mqtt-packet for
 *   encoding/decoding, raw bytes of every received packet kept) so tests can
 *   withhold acks, send malformed bytes, or drop the connection abruptly.
 */
import * as net from "node:net"
import { afterEach } from "@effect/vitest"
import mqtt from "mqtt"
import type { IClientOptions, IClientPublishOptions, MqttClient } from "mqtt"
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
import { startTestBroker, type TestBroker } from "../support/TestBroker.ts"

// ---------------------------------------------------------------------------
// Broker
// ---------------------------------------------------------------------------

export interface TestBrokerOptions {
  /** Per offline session queue bound (default 1000). */
  readonly maxQueuedMessages?: number
  /** Per-client outbound in-flight window (default 20, as Mosquitto). */
  readonly maxInflightMessages?: number
  /** Time allowed between TCP accept and CONNECT (default 10_000). */
  readonly connectTimeoutMs?: number
  /** Largest accepted packet in bytes (broker default: the protocol maximum). */
  readonly maxPacketSize?: number
}

export interface RunningBroker {
  readonly port: number
  readonly url: string
  stop(): Promise<void>
}

/** `options` without the keys whose value is `undefined` (so the broker's defaults apply). */
export const definedOnly = <T extends object>(options: T): { [K in keyof T]?: Exclude<T[K], undefined> } =>
  Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>
  }

/**
 * Starts this broker (Broker.layer + the memory SessionPlugin) on 127.0.0.1 and a free port;
 * its `logs` and `provider` let tests check log lines and stored sessions.
 */
export async function startBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  return startTestBroker(definedOnly(options))
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Short pause letting the broker finish work it has no observable ack for (e.g. session teardown). */
export const settle = (): Promise<void> => sleep(100)

let idCounter = 0
const BARRIER_PREFIX = "barrier-"
/** A unique, short (<= 23 chars, valid for MQTT 3.1) client id. */
export const uniqueId = (prefix = "c"): string => `${prefix}${process.pid % 1000}-${++idCounter}`

/** Change notifications: `subscribe` registers a wake-up, `notify` runs them all. */
export class Notifier {
  private readonly listeners = new Set<() => void>()
  notify(): void {
    for (const listener of [...this.listeners]) listener()
  }
  readonly subscribe = (wake: () => void): (() => void) => {
    this.listeners.add(wake)
    return () => this.listeners.delete(wake)
  }
}

/**
 * Runs `check` now and on every notification of `changes` until it returns a
 * value other than `undefined` (or throws), or fails with `describe()` after
 * `timeoutMs`.
 */
export async function waitUntil<A>(
  check: () => A | undefined,
  changes: Notifier,
  timeoutMs: number,
  describe: () => string
): Promise<A> {
  const first = check()
  if (first !== undefined) return first
  return new Promise<A>((resolve, reject) => {
    const finish = (outcome: () => void) => {
      clearTimeout(timer)
      unsubscribe()
      outcome()
    }
    const unsubscribe = changes.subscribe(() => {
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

/** What `barrier` needs of its two sides (`TestClient` and `Client5` both fit). */
export interface BarrierPublisher {
  publish(topic: string, payload: string, options: { qos: QoS }): Promise<unknown>
}
export interface BarrierSubscriber {
  waitForMessage(topic: string, payload?: string, timeoutMs?: number): Promise<unknown>
}

/**
 * Barrier for "nothing arrives" assertions: `publisher` publishes a unique
 * marker at QoS 1 on `topic` (which `subscriber` must already be subscribed
 * to) and waits until the subscriber got it, then settles briefly. Anything
 * published before the marker by the same publisher has had its chance to be
 * delivered by then.
 */
export async function barrier(publisher: BarrierPublisher, subscriber: BarrierSubscriber, topic: string): Promise<void> {
  const marker = `${BARRIER_PREFIX}${++idCounter}`
  await publisher.publish(topic, marker, { qos: 1 })
  await subscriber.waitForMessage(topic, marker)
  await settle()
}

// ---------------------------------------------------------------------------
// Per-test resource tracking
// ---------------------------------------------------------------------------

export type Defer = (cleanup: () => void | Promise<void>) => void

export interface E2E {
  /** Starts a broker that is stopped after the test. */
  broker(options?: TestBrokerOptions): Promise<TestBroker>
  /** Connects an mqtt.js client (waits for a successful CONNACK). */
  client(broker: RunningBroker, options?: ClientOptions): Promise<TestClient>
  /** Opens a raw TCP socket to the broker (no CONNECT sent). */
  raw(broker: RunningBroker): Promise<RawClient>
  /** Opens a raw socket, sends CONNECT and waits for the CONNACK. */
  rawConnect(broker: RunningBroker, connect: RawConnectOptions): Promise<{ raw: RawClient; connack: IConnackPacket }>
  /** Registers any other cleanup action. */
  defer: Defer
}

/** Registers the clean-up of a client being created, then waits for its CONNACK. */
export async function tracked<C extends { forceClose(): Promise<void> }>(
  defer: Defer,
  created: { readonly client: C; readonly ready: Promise<C> }
): Promise<C> {
  defer(() => created.client.forceClose())
  return created.ready
}

/** Registers the clean-up of a raw connection being opened. */
export async function trackedRaw<R extends RawClient>(defer: Defer, opening: Promise<R>): Promise<R> {
  const raw = await opening
  defer(() => raw.destroy())
  return raw
}

/**
 * Call once at the top level of a test file. Every resource created through
 * the returned object is released after each test (clients first, then
 * brokers).
 */
export function useE2E(): E2E {
  let cleanups: Array<() => void | Promise<void>> = []
  afterEach(async () => {
    const pending = cleanups.reverse()
    cleanups = []
    for (const cleanup of pending) {
      try {
        await cleanup()
      } catch {
        // best effort
      }
    }
  })
  const defer: Defer = (cleanup) => {
    cleanups.push(cleanup)
  }
  const raw = (broker: RunningBroker) => trackedRaw(defer, RawClient.open(broker.port))
  return {
    defer,
    broker: async (options) => {
      const broker = await startBroker(options)
      defer(() => broker.stop())
      return broker
    },
    client: (broker, options) => tracked(defer, TestClient.create(broker, options)),
    raw,
    rawConnect: async (broker, connect) => {
      const client = await raw(broker)
      client.write(encodeConnect(connect))
      const connack = (await client.next("connack")) as IConnackPacket
      return { raw: client, connack }
    }
  }
}

// ---------------------------------------------------------------------------
// mqtt.js client wrapper
// ---------------------------------------------------------------------------

export type ConnectProperties = NonNullable<IConnectPacket["properties"]>
export type WillProperties = NonNullable<NonNullable<IConnectPacket["will"]>["properties"]>
export type PublishProperties = NonNullable<IPublishPacket["properties"]>
export type DisconnectProperties = NonNullable<IDisconnectPacket["properties"]>

export interface ClientOptions {
  readonly clientId?: string
  readonly clean?: boolean
  readonly protocolVersion?: 3 | 4
  readonly keepalive?: number
  readonly will?: {
    readonly topic: string
    readonly payload: string
    readonly qos?: QoS
    readonly retain?: boolean
  }
}

/** The CONNECT options of either wrapper (`properties` only in MQTT 5). */
export interface ConnectOptions {
  readonly clientId?: string
  readonly clean?: boolean
  readonly keepalive?: number
  readonly properties?: ConnectProperties
  readonly will?: {
    readonly topic: string
    readonly payload: string | Buffer
    readonly qos?: QoS
    readonly retain?: boolean
    readonly properties?: WillProperties
  }
}

/** mqtt.js options for a test client: no reconnects, no resubscribes, a 3 s connect timeout. */
export function mqttOptions(protocolVersion: 3 | 4 | 5, options: ConnectOptions, defaultId: () => string): IClientOptions {
  const mqttOptions: IClientOptions = {
    clientId: options.clientId ?? defaultId(),
    clean: options.clean ?? true,
    protocolVersion,
    protocolId: protocolVersion === 3 ? "MQIsdp" : "MQTT",
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
  return mqttOptions
}

export interface ReceivedMessage {
  readonly topic: string
  readonly payload: string
  readonly qos: QoS
  readonly retain: boolean
  readonly dup: boolean
}

/**
 * What the mqtt.js wrappers of both protocol versions share: the message inbox
 * (recorded by `toMessage`), connect / close tracking, publish / unsubscribe,
 * timed waits and the ways to leave.
 */
export abstract class ClientBase<M extends ReceivedMessage> {
  /** Every PUBLISH received so far, in arrival order. */
  readonly messages: Array<M> = []
  /** CONNACK of the successful connect. */
  connack!: IConnackPacket
  /** Resolves when the network connection is closed (by either side). */
  readonly closed: Promise<void>
  readonly mqtt: MqttClient
  protected closedFlag = false
  protected readonly changes = new Notifier()

  protected constructor(mqttClient: MqttClient) {
    this.mqtt = mqttClient
    // Recorded when the PUBLISH arrives rather than on mqtt.js's "message"
    // event: mqtt.js emits QoS 2 messages only on PUBREL, which would reorder
    // them relative to QoS 0/1 messages the broker sent in between.
    mqttClient.on("packetreceive", (packet) => {
      if (packet.cmd !== "publish") return
      this.messages.push(this.toMessage(packet))
      this.changes.notify()
    })
    this.closed = new Promise((resolve) => {
      mqttClient.on("close", () => {
        this.closedFlag = true
        this.changes.notify()
        resolve()
      })
    })
    // mqtt.js emits "error" for refused CONNACKs and socket errors; an unhandled
    // "error" event would crash the worker.
    mqttClient.on("error", () => {})
  }

  /** The inbox entry of a received PUBLISH. */
  protected abstract toMessage(packet: IPublishPacket): M

  /** Resolves with this client on a successful CONNACK; rejects if the connect fails or the connection closes first. */
  protected whenConnected(): Promise<this> {
    return new Promise<this>((resolve, reject) => {
      const onConnect = (connack: IConnackPacket) => {
        cleanup()
        this.connack = connack
        resolve(this)
      }
      const onError = (error: Error) => {
        cleanup()
        reject(error)
      }
      const onClose = () => {
        cleanup()
        reject(new Error(`connection closed before CONNACK (client ${this.clientId})`))
      }
      const cleanup = () => {
        this.mqtt.off("connect", onConnect)
        this.mqtt.off("error", onError)
        this.mqtt.off("close", onClose)
      }
      this.mqtt.on("connect", onConnect)
      this.mqtt.on("error", onError)
      this.mqtt.on("close", onClose)
    })
  }

  get clientId(): string {
    return this.mqtt.options.clientId ?? ""
  }

  get isClosed(): boolean {
    return this.closedFlag
  }

  /** Waits, re-checking on every received packet and on close (see `waitUntil`). */
  protected waitFor<A>(check: () => A | undefined, timeoutMs: number, describe: () => string): Promise<A> {
    return waitUntil(check, this.changes, timeoutMs, describe)
  }

  /** Races `operation` against the connection closing, so a dropped connection fails fast. */
  protected untilClosed<A>(what: string, operation: Promise<A>): Promise<A> {
    const closed = this.closed.then(() => {
      throw new Error(`connection of ${this.clientId} closed during ${what}`)
    })
    return Promise.race([operation, closed])
  }

  /** Unsubscribes; resolves once the UNSUBACK arrives, with its reason codes (none in 3.1.1). */
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

  /**
   * Publishes; resolves when the QoS flow completes (immediately after write
   * for QoS 0, on PUBACK for QoS 1, on PUBCOMP for QoS 2), rejects on a failure
   * reason code. `properties` are MQTT 5 only.
   */
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

  /** Waits until at least `count` messages (optionally matching `filter`) were received; returns them. */
  async waitForMessages(count: number, options: { timeoutMs?: number; filter?: (m: M) => boolean } = {}): Promise<Array<M>> {
    const filter = options.filter ?? (() => true)
    return this.waitFor(
      () => {
        const matching = this.messages.filter(filter)
        return matching.length >= count ? matching : undefined
      },
      options.timeoutMs ?? 2_000,
      () =>
        `expected ${count} message(s) on ${this.clientId}, got ${this.messages.filter(filter).length}: ` +
        JSON.stringify(this.messages.map((m) => `${m.topic}=${m.payload}`))
    )
  }

  /** Waits for the first message on `topic` (optionally with `payload`). */
  async waitForMessage(topic: string, payload?: string, timeoutMs = 2_000): Promise<M> {
    const [message] = await this.waitForMessages(1, {
      timeoutMs,
      filter: (m) => m.topic === topic && (payload === undefined || m.payload === payload)
    })
    return message!
  }

  /** Messages received on `topic`, excluding `barrier` markers. */
  on(topic: string): Array<M> {
    return this.messages.filter((m) => m.topic === topic && !m.payload.startsWith(BARRIER_PREFIX))
  }

  /** Payloads received on `topic`, excluding `barrier` markers. */
  payloads(topic: string): Array<string> {
    return this.on(topic).map((m) => m.payload)
  }

  /** Resolves `true` once the connection is closed, `false` if still open after `timeoutMs`. */
  async waitClosed(timeoutMs = 2_000): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), sleep(timeoutMs).then(() => false)])
  }

  /**
   * Sends DISCONNECT (with a reason code / properties in MQTT 5) and resolves after
   * the broker has closed the connection, plus a short settle period for the
   * broker to update session state.
   */
  async disconnect(options: { reasonCode?: number; properties?: DisconnectProperties } = {}): Promise<void> {
    if (this.closedFlag) return
    const packet: { reasonCode?: number; properties?: DisconnectProperties } = {}
    if (options.reasonCode !== undefined) packet.reasonCode = options.reasonCode
    if (options.properties !== undefined) packet.properties = options.properties
    await new Promise<void>((resolve) => this.mqtt.end(false, packet, () => resolve()))
    await this.waitClosed(2_000)
    await settle()
  }

  /** Drops the TCP connection without DISCONNECT and waits for the close. */
  async drop(): Promise<void> {
    if (this.closedFlag) return
    this.mqtt.stream.destroy()
    await this.waitClosed(2_000)
  }

  /** Drops the TCP connection without DISCONNECT (cleanup). */
  async forceClose(): Promise<void> {
    if (this.closedFlag) {
      this.mqtt.end(true)
      return
    }
    await Promise.race([new Promise<void>((resolve) => this.mqtt.end(true, {}, () => resolve())), sleep(1_000)])
  }
}

/** An mqtt.js client speaking MQTT 3.1.1 (or 3.1). */
export class TestClient extends ClientBase<ReceivedMessage> {
  static create(broker: RunningBroker, options: ClientOptions = {}): { client: TestClient; ready: Promise<TestClient> } {
    const client = new TestClient(mqtt.connect(broker.url, mqttOptions(options.protocolVersion ?? 4, options, uniqueId)))
    return { client, ready: client.whenConnected() }
  }

  protected override toMessage(packet: IPublishPacket): ReceivedMessage {
    return {
      topic: packet.topic,
      payload: Buffer.isBuffer(packet.payload) ? packet.payload.toString("utf8") : String(packet.payload),
      qos: packet.qos,
      retain: packet.retain,
      dup: packet.dup
    }
  }

  /** Subscribes and resolves with the granted QoS per filter (128 = failure). */
  async subscribe(filters: string | Record<string, QoS>, qos: QoS = 0): Promise<Array<number>> {
    const map: Record<string, { qos: QoS }> = {}
    if (typeof filters === "string") map[filters] = { qos }
    else for (const [topic, q] of Object.entries(filters)) map[topic] = { qos: q }
    const subscribed = new Promise<Array<number>>((resolve, reject) => {
      this.mqtt.subscribe(map, (error, granted) => {
        if (error) reject(error)
        else resolve((granted ?? []).map((g) => g.qos))
      })
    })
    return this.untilClosed(`SUBSCRIBE ${Object.keys(map).join(", ")}`, subscribed)
  }
}

// ---------------------------------------------------------------------------
// Wire encoding
// ---------------------------------------------------------------------------

/** A two-byte big-endian integer. */
export const encodeU16 = (value: number): Buffer => {
  const bytes = Buffer.alloc(2)
  bytes.writeUInt16BE(value)
  return bytes
}

/** A UTF-8 string with its two-byte length prefix. */
export const encodeString = (value: string): Buffer => {
  const bytes = Buffer.from(value, "utf8")
  return Buffer.concat([encodeU16(bytes.length), bytes])
}

/** Encodes an MQTT Variable Byte Integer (the Remaining Length, a property section's length). */
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

/** A whole packet: the first byte (type and flags), the Remaining Length, then `body`. */
export const encodePacket = (firstByte: number, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from([firstByte]), encodeVarInt(body.length), body])

export interface RawConnectOptions {
  readonly clientId: string
  readonly clean?: boolean
  readonly keepalive?: number
  readonly protocolName?: string
  readonly protocolLevel?: number
  readonly will?: { readonly topic: string; readonly payload: string; readonly qos?: QoS; readonly retain?: boolean }
}

/**
 * Hand-rolled CONNECT encoder: unlike mqtt-packet it lets tests send an empty
 * client id with clean=0, arbitrary protocol names and protocol levels.
 */
export function encodeConnect(options: RawConnectOptions): Buffer {
  let flags = 0
  if (options.clean ?? true) flags |= 0x02
  const payload: Array<Buffer> = [encodeString(options.clientId)]
  if (options.will !== undefined) {
    flags |= 0x04 | ((options.will.qos ?? 0) << 3) | ((options.will.retain ?? false) ? 0x20 : 0)
    payload.push(encodeString(options.will.topic), encodeString(options.will.payload))
  }
  const body = Buffer.concat([
    encodeString(options.protocolName ?? "MQTT"),
    Buffer.from([options.protocolLevel ?? 4, flags]),
    encodeU16(options.keepalive ?? 0),
    ...payload
  ])
  return encodePacket(0x10, body)
}

// ---------------------------------------------------------------------------
// Raw socket client
// ---------------------------------------------------------------------------

export interface Frame {
  readonly packet: Packet
  /** The complete packet as received (fixed header included). */
  readonly bytes: Buffer
}

/** MQTT over a bare socket, decoding with mqtt-packet for the connection's protocol version (3.1.1 by default). */
export class RawClient {
  /** Every packet received, in order. */
  readonly received: Array<Packet> = []
  /** Every packet received, with its bytes, in order. */
  readonly frames: Array<Frame> = []
  /** Received packets not yet consumed by `next` / `nextFrame`. */
  private readonly inbox: Array<Frame> = []
  private readonly changes = new Notifier()
  private closedFlag = false
  private buffered: Buffer = Buffer.alloc(0)
  readonly closed: Promise<void>
  parseError: Error | undefined
  readonly socket: net.Socket
  readonly protocolVersion: 4 | 5

  protected constructor(socket: net.Socket, protocolVersion: 4 | 5) {
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

  /** A TCP connection to the broker on 127.0.0.1:`port`, once established. */
  protected static connectSocket(port: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: "127.0.0.1" })
      socket.once("connect", () => {
        socket.off("error", reject)
        resolve(socket)
      })
      socket.once("error", reject)
    })
  }

  static async open(port: number, protocolVersion: 4 | 5 = 4): Promise<RawClient> {
    return new RawClient(await RawClient.connectSocket(port), protocolVersion)
  }

  /** Splits the byte stream into packets (fixed header + Remaining Length) and decodes each. */
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

  /** Encodes `packet` with mqtt-packet for this connection's protocol version and writes it. */
  send(packet: Packet): void {
    this.write(generate(packet, { protocolVersion: this.protocolVersion }))
  }

  /** Writes raw bytes. */
  write(bytes: Buffer | ReadonlyArray<number>): void {
    if (this.closedFlag || this.socket.destroyed) return
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes))
  }

  /** Consumes the next received frame (of type `cmd`, if given), waiting up to `timeoutMs`. */
  async nextFrame(cmd?: PacketCmd, timeoutMs = 2_000): Promise<Frame> {
    const got = () => JSON.stringify(this.received.map((p) => p.cmd))
    return waitUntil(
      () => {
        const index = this.inbox.findIndex((f) => cmd === undefined || f.packet.cmd === cmd)
        if (index === -1) {
          if (this.closedFlag) throw new Error(`connection closed while waiting for ${cmd ?? "a packet"}; got ${got()}`)
          return undefined
        }
        return this.inbox.splice(index, 1)[0]
      },
      this.changes,
      timeoutMs,
      () => `no ${cmd ?? "packet"} received; got ${got()}`
    )
  }

  /** Consumes the next received packet (of type `cmd`, if given), waiting up to `timeoutMs`. */
  async next(cmd?: PacketCmd, timeoutMs = 2_000): Promise<Packet> {
    return (await this.nextFrame(cmd, timeoutMs)).packet
  }

  /** Consumes received packets until `count` of type `cmd` were taken. */
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

  /** Resolves `true` once the connection is closed, `false` if still open after `timeoutMs`. */
  async waitClosed(timeoutMs = 2_000): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), sleep(timeoutMs).then(() => false)])
  }

  /** PINGREQ → PINGRESP round trip; proves the connection is alive and everything sent before was processed. */
  async ping(timeoutMs = 2_000): Promise<void> {
    this.send({ cmd: "pingreq" })
    await this.next("pingresp", timeoutMs)
  }

  /** Drops the TCP connection abruptly (no DISCONNECT). */
  destroy(): void {
    this.socket.destroy()
  }
}
