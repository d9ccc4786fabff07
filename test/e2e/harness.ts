/**
 * End-to-end test harness.
 *
 * - `startBroker` starts a broker on an ephemeral loopback port.
 * - `useE2E()` gives a test file a tracker that closes every broker, client and
 *   raw socket created during a test (registered as an `afterEach` hook).
 * - `TestClient` wraps an mqtt.js client (promise-based connect / publish /
 *   subscribe plus a message inbox with timed waits).
 * - `RawClient` speaks MQTT over a bare `node:net` socket (mqtt-packet for
 *   encoding/decoding) so tests can withhold acks, send malformed bytes, or
 *   drop the connection abruptly.
 */
import * as net from "node:net"
import { afterEach } from "@effect/vitest"
import mqtt from "mqtt"
import type { IClientOptions, IClientPublishOptions, MqttClient } from "mqtt"
import { generate, parser } from "mqtt-packet"
import type { IConnackPacket, Packet, PacketCmd, QoS } from "mqtt-packet"
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

/**
 * Starts this broker (Broker.layer + the memory SessionPlugin) on 127.0.0.1 and a free port;
 * its `logs` and `provider` let tests check log lines and stored sessions.
 */
export async function startBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  return startTestBroker({
    ...(options.maxQueuedMessages === undefined ? {} : { maxQueuedMessages: options.maxQueuedMessages }),
    ...(options.maxInflightMessages === undefined ? {} : { maxInflightMessages: options.maxInflightMessages }),
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
    ...(options.maxPacketSize === undefined ? {} : { maxPacketSize: options.maxPacketSize })
  })
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

/**
 * Polls `check` until it returns a value other than `undefined`, or fails with
 * `describe()` after `timeoutMs`.
 */
async function waitUntil<A>(
  check: () => A | undefined,
  subscribe: (wake: () => void) => () => void,
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

// ---------------------------------------------------------------------------
// Per-test resource tracking
// ---------------------------------------------------------------------------

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
  defer(cleanup: () => void | Promise<void>): void
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
  const defer = (cleanup: () => void | Promise<void>) => {
    cleanups.push(cleanup)
  }
  return {
    defer,
    broker: async (options) => {
      const broker = await startBroker(options)
      defer(() => broker.stop())
      return broker
    },
    client: async (broker, options) => {
      const { client, ready } = TestClient.create(broker, options)
      defer(() => client.forceClose())
      await ready
      return client
    },
    raw: async (broker) => {
      const raw = await RawClient.open(broker.port)
      defer(() => raw.destroy())
      return raw
    },
    rawConnect: async (broker, connect) => {
      const raw = await RawClient.open(broker.port)
      defer(() => raw.destroy())
      raw.write(encodeConnect(connect))
      const connack = (await raw.next("connack")) as IConnackPacket
      return { raw, connack }
    }
  }
}

// ---------------------------------------------------------------------------
// mqtt.js client wrapper
// ---------------------------------------------------------------------------

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

export interface ReceivedMessage {
  readonly topic: string
  readonly payload: string
  readonly qos: QoS
  readonly retain: boolean
  readonly dup: boolean
}

export class TestClient {
  /** Every PUBLISH received so far, in arrival order. */
  readonly messages: Array<ReceivedMessage> = []
  /** CONNACK of the successful connect. */
  connack!: IConnackPacket
  /** Resolves when the network connection is closed (by either side). */
  readonly closed: Promise<void>
  private closedFlag = false
  private readonly listeners = new Set<() => void>()

  readonly mqtt: MqttClient

  private constructor(mqttClient: MqttClient) {
    this.mqtt = mqttClient
    // Recorded when the PUBLISH arrives rather than on mqtt.js's "message"
    // event: mqtt.js emits QoS 2 messages only on PUBREL, which would reorder
    // them relative to QoS 0/1 messages the broker sent in between.
    mqttClient.on("packetreceive", (packet) => {
      if (packet.cmd !== "publish") return
      this.messages.push({
        topic: packet.topic,
        payload: Buffer.isBuffer(packet.payload) ? packet.payload.toString("utf8") : String(packet.payload),
        qos: packet.qos,
        retain: packet.retain,
        dup: packet.dup
      })
      this.notify()
    })
    this.closed = new Promise((resolve) => {
      mqttClient.on("close", () => {
        this.closedFlag = true
        this.notify()
        resolve()
      })
    })
    // mqtt.js emits "error" for refused CONNACKs and socket errors; an unhandled
    // "error" event would crash the worker.
    mqttClient.on("error", () => {})
  }

  static create(broker: RunningBroker, options: ClientOptions = {}): { client: TestClient; ready: Promise<TestClient> } {
    const protocolVersion = options.protocolVersion ?? 4
    const mqttOptions: IClientOptions = {
      clientId: options.clientId ?? uniqueId(),
      clean: options.clean ?? true,
      protocolVersion,
      protocolId: protocolVersion === 3 ? "MQIsdp" : "MQTT",
      keepalive: options.keepalive ?? 30,
      reconnectPeriod: 0,
      connectTimeout: 3_000,
      resubscribe: false
    }
    if (options.will !== undefined) {
      mqttOptions.will = {
        topic: options.will.topic,
        payload: Buffer.from(options.will.payload),
        qos: options.will.qos ?? 0,
        retain: options.will.retain ?? false
      }
    }
    const client = new TestClient(mqtt.connect(broker.url, mqttOptions))
    const ready = new Promise<TestClient>((resolve, reject) => {
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
        reject(new Error(`connection closed before CONNACK (client ${mqttOptions.clientId})`))
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

  get isClosed(): boolean {
    return this.closedFlag
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener()
  }

  private onChange = (wake: () => void): (() => void) => {
    this.listeners.add(wake)
    return () => this.listeners.delete(wake)
  }

  /** Races `operation` against the connection closing, so a dropped connection fails fast. */
  private untilClosed<A>(what: string, operation: Promise<A>): Promise<A> {
    const closed = this.closed.then(() => {
      throw new Error(`connection of ${this.mqtt.options.clientId} closed during ${what}`)
    })
    return Promise.race([operation, closed])
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

  /** Unsubscribes; resolves once the UNSUBACK arrives. */
  async unsubscribe(filters: string | Array<string>): Promise<void> {
    const unsubscribed = new Promise<void>((resolve, reject) => {
      this.mqtt.unsubscribe(filters, (error, packet) => {
        if (error) reject(error)
        else if (packet === undefined || packet.cmd !== "unsuback") reject(new Error("no UNSUBACK received"))
        else resolve()
      })
    })
    return this.untilClosed(`UNSUBSCRIBE ${String(filters)}`, unsubscribed)
  }

  /**
   * Publishes; resolves when the QoS flow completes (immediately after write
   * for QoS 0, on PUBACK for QoS 1, on PUBCOMP for QoS 2).
   */
  async publish(topic: string, payload: string | Buffer, options: { qos?: QoS; retain?: boolean } = {}): Promise<void> {
    const publishOptions: IClientPublishOptions = { qos: options.qos ?? 0, retain: options.retain ?? false }
    const published = new Promise<void>((resolve, reject) => {
      this.mqtt.publish(topic, payload, publishOptions, (error) => {
        if (error) reject(error)
        else resolve()
      })
    })
    return this.untilClosed(`PUBLISH ${topic}`, published)
  }

  /** Waits until at least `count` messages (optionally matching `filter`) were received; returns them. */
  async waitForMessages(
    count: number,
    options: { timeoutMs?: number; filter?: (m: ReceivedMessage) => boolean } = {}
  ): Promise<Array<ReceivedMessage>> {
    const filter = options.filter ?? (() => true)
    return waitUntil(
      () => {
        const matching = this.messages.filter(filter)
        return matching.length >= count ? matching : undefined
      },
      this.onChange,
      options.timeoutMs ?? 2_000,
      () =>
        `expected ${count} message(s) on ${this.mqtt.options.clientId}, got ${this.messages.filter(filter).length}: ` +
        JSON.stringify(this.messages.map((m) => `${m.topic}=${m.payload}`))
    )
  }

  /** Waits for the first message on `topic` (optionally with `payload`). */
  async waitForMessage(topic: string, payload?: string, timeoutMs = 2_000): Promise<ReceivedMessage> {
    const [message] = await this.waitForMessages(1, {
      timeoutMs,
      filter: (m) => m.topic === topic && (payload === undefined || m.payload === payload)
    })
    return message!
  }

  /** Messages received on `topic`, excluding `barrier` markers. */
  on(topic: string): Array<ReceivedMessage> {
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
   * Sends DISCONNECT and resolves after the broker has closed the connection,
   * plus a short settle period for the broker to update session state.
   */
  async disconnect(): Promise<void> {
    if (this.closedFlag) return
    await new Promise<void>((resolve) => this.mqtt.end(false, {}, () => resolve()))
    await this.waitClosed(2_000)
    await settle()
  }

  /** Drops the TCP connection without DISCONNECT. */
  async forceClose(): Promise<void> {
    if (this.closedFlag) {
      this.mqtt.end(true)
      return
    }
    await Promise.race([new Promise<void>((resolve) => this.mqtt.end(true, {}, () => resolve())), sleep(1_000)])
  }
}

/**
 * Barrier for "nothing arrives" assertions: `publisher` publishes a unique
 * marker at QoS 1 on `topic` (which `subscriber` must already be subscribed
 * to) and waits until the subscriber got it, then settles briefly. Anything
 * published before the marker by the same publisher has had its chance to be
 * delivered by then.
 */
export async function barrier(publisher: TestClient, subscriber: TestClient, topic: string): Promise<void> {
  const marker = `${BARRIER_PREFIX}${++idCounter}`
  await publisher.publish(topic, marker, { qos: 1 })
  await subscriber.waitForMessage(topic, marker)
  await settle()
}

// ---------------------------------------------------------------------------
// Raw socket client
// ---------------------------------------------------------------------------

export interface RawConnectOptions {
  readonly clientId: string
  readonly clean?: boolean
  readonly keepalive?: number
  readonly protocolName?: string
  readonly protocolLevel?: number
  readonly will?: { readonly topic: string; readonly payload: string; readonly qos?: QoS; readonly retain?: boolean }
}

const encodeString = (value: string): Buffer => {
  const bytes = Buffer.from(value, "utf8")
  const length = Buffer.alloc(2)
  length.writeUInt16BE(bytes.length)
  return Buffer.concat([length, bytes])
}

/** Encodes an MQTT "Remaining Length" variable byte integer. */
export const encodeRemainingLength = (length: number): Buffer => {
  const bytes: Array<number> = []
  do {
    let byte = length % 128
    length = Math.floor(length / 128)
    if (length > 0) byte |= 0x80
    bytes.push(byte)
  } while (length > 0)
  return Buffer.from(bytes)
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
  const keepalive = Buffer.alloc(2)
  keepalive.writeUInt16BE(options.keepalive ?? 0)
  const body = Buffer.concat([
    encodeString(options.protocolName ?? "MQTT"),
    Buffer.from([options.protocolLevel ?? 4, flags]),
    keepalive,
    ...payload
  ])
  return Buffer.concat([Buffer.from([0x10]), encodeRemainingLength(body.length), body])
}

export class RawClient {
  /** Every packet received, in order. */
  readonly received: Array<Packet> = []
  /** Received packets not yet consumed by `next`. */
  private readonly inbox: Array<Packet> = []
  private readonly listeners = new Set<() => void>()
  private closedFlag = false
  readonly closed: Promise<void>
  parseError: Error | undefined

  readonly socket: net.Socket

  private constructor(socket: net.Socket) {
    this.socket = socket
    const packetParser = parser({ protocolVersion: 4 })
    packetParser.on("packet", (packet: Packet) => {
      this.received.push(packet)
      this.inbox.push(packet)
      this.notify()
    })
    packetParser.on("error", (error: Error) => {
      this.parseError = error
    })
    socket.on("data", (chunk) => packetParser.parse(chunk))
    socket.on("error", () => {})
    this.closed = new Promise((resolve) => {
      socket.on("close", () => {
        this.closedFlag = true
        this.notify()
        resolve()
      })
    })
  }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: "127.0.0.1" })
      socket.once("connect", () => {
        socket.off("error", reject)
        resolve(new RawClient(socket))
      })
      socket.once("error", reject)
    })
  }

  get isClosed(): boolean {
    return this.closedFlag
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener()
  }

  private onChange = (wake: () => void): (() => void) => {
    this.listeners.add(wake)
    return () => this.listeners.delete(wake)
  }

  /** Encodes a packet with mqtt-packet and writes it. */
  send(packet: Packet): void {
    this.write(generate(packet, { protocolVersion: 4 }))
  }

  /** Writes raw bytes. */
  write(bytes: Buffer | ReadonlyArray<number>): void {
    if (this.closedFlag || this.socket.destroyed) return
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes))
  }

  /** Consumes the next received packet (of type `cmd`, if given), waiting up to `timeoutMs`. */
  async next(cmd?: PacketCmd, timeoutMs = 2_000): Promise<Packet> {
    return waitUntil(
      () => {
        const index = this.inbox.findIndex((p) => cmd === undefined || p.cmd === cmd)
        if (index === -1) {
          if (this.closedFlag) throw new Error(`connection closed while waiting for ${cmd ?? "a packet"}`)
          return undefined
        }
        return this.inbox.splice(index, 1)[0]
      },
      this.onChange,
      timeoutMs,
      () => `no ${cmd ?? "packet"} received; got ${JSON.stringify(this.received.map((p) => p.cmd))}`
    )
  }

  /** Consumes received packets until `count` of type `cmd` were taken. */
  async take(cmd: PacketCmd, count: number, timeoutMs = 2_000): Promise<Array<Packet>> {
    const deadline = Date.now() + timeoutMs
    const taken: Array<Packet> = []
    while (taken.length < count) {
      taken.push(await this.next(cmd, Math.max(1, deadline - Date.now())))
    }
    return taken
  }

  /** Received but not yet consumed packets. */
  pending(): ReadonlyArray<Packet> {
    return [...this.inbox]
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
