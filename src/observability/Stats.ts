/**
 * What the broker counts as it runs: plain numbers incremented on the message path (one `++`
 * each, no service lookup, no allocation), read by the `$SYS` publisher and by Effect's metric
 * exporters only when they report. One `Stats` per broker, held by its `Core`.
 */
import { Histogram } from "./Histogram.ts"

/** The bytes and packets a connection's outbox writes (`Outbox` adds to them). */
export interface Traffic {
  packetsSent: number
  bytesSent: number
}

/** Upper bounds (seconds) of the publish → deliver latency buckets: 50 µs to 1 s. */
export const DELIVERY_LATENCY_BOUNDS: ReadonlyArray<number> = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1
]

/**
 * One message in this many has its routing timed: reading the clock (`performance.now`, 120–180 ns
 * on the benchmark machine) twice per message would cost about 5 % of a fan-in's throughput.
 */
export const LATENCY_SAMPLE_EVERY = 16

/** Upper bounds (seconds) of the CONNECT handling time buckets: 0.5 ms to 10 s (a password check takes ms). */
export const CONNECT_DURATION_BOUNDS: ReadonlyArray<number> = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
]

/**
 * Why a CONNECT was refused, as a metric label, by the MQTT 5 reason code the broker answered
 * with (a 3.1.1 client got the matching return code, or was closed).
 */
export const REFUSAL_REASONS: ReadonlyMap<number, string> = new Map([
  [0x81, "malformed_packet"],
  [0x82, "protocol_error"],
  [0x84, "unsupported_protocol_version"],
  [0x85, "client_identifier_not_valid"],
  [0x86, "bad_user_name_or_password"],
  [0x87, "not_authorized"],
  [0x8c, "bad_authentication_method"],
  [0x90, "topic_name_invalid"],
  [0x95, "packet_too_large"],
  [0x97, "quota_exceeded"],
  [0x9a, "retain_not_supported"],
  [0x9b, "qos_not_supported"],
  [0x9f, "connection_rate_exceeded"]
])

/** The label of a refusal reason code; a code not in `REFUSAL_REASONS` is "other". */
export const refusalReason = (code: number): string => REFUSAL_REASONS.get(code) ?? "other"

/** A broker's running counts. */
export class Stats implements Traffic {
  /** MQTT packets read from clients (any type). */
  packetsReceived = 0
  /** MQTT packets queued to clients (any type). */
  packetsSent = 0
  /** Bytes read from client sockets. */
  bytesReceived = 0
  /** Bytes written to client sockets. */
  bytesSent = 0
  /** PUBLISH packets received from clients. */
  publishReceived = 0
  /** PUBLISH packets sent to clients. */
  publishSent = 0
  /** Payload bytes of the PUBLISH packets received. */
  publishBytesReceived = 0
  /** Payload bytes of the PUBLISH packets sent. */
  publishBytesSent = 0
  /** Sockets accepted by any listener. */
  socketsAccepted = 0
  /** CONNECTs accepted (CONNACK 0). */
  connectionsAccepted = 0
  /** Most clients connected at once since the start. */
  maxConnected = 0
  /** CONNECTs refused, by reason label (`refusalReason`). */
  readonly refusals = new Map<string, number>()
  /**
   * Seconds from a message's routing to its copies being in every subscriber's outbox or session,
   * for one message in `LATENCY_SAMPLE_EVERY` (the first one included).
   */
  readonly deliveryLatency = new Histogram(DELIVERY_LATENCY_BOUNDS)
  #routed = 0
  /** Seconds from a CONNECT's arrival to its answer (accepted or refused). */
  readonly connectDuration = new Histogram(CONNECT_DURATION_BOUNDS)

  /** Counts a PUBLISH sent to a client, with its payload bytes. */
  countPublishSent(payloadBytes: number): void {
    this.publishSent++
    this.publishBytesSent += payloadBytes
  }

  /** Whether the message being routed now is one whose latency is sampled. */
  sampleLatency(): boolean {
    return this.#routed++ % LATENCY_SAMPLE_EVERY === 0
  }

  /** Counts a refused CONNECT by the MQTT 5 reason code it was answered with. */
  refuse(code: number): void {
    const reason = refusalReason(code)
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1)
  }

  /** CONNECTs refused for every reason. */
  get connectionsRefused(): number {
    let total = 0
    for (const count of this.refusals.values()) total += count
    return total
  }

  /** Counts an accepted CONNECT, with the number of clients now connected. */
  accept(connected: number): void {
    this.connectionsAccepted++
    if (connected > this.maxConnected) this.maxConnected = connected
  }
}
