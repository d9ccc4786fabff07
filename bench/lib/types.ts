import type { BrokerName, BrokerProfile, RunningBroker } from "./brokers.ts"
import type { RawClient } from "./client.ts"
import type { Integrity } from "./stats.ts"

export interface Params {
  readonly quick: boolean
  readonly reps: number
  readonly warmupMs: number
  readonly durationMs: number
  /** payload size in bytes (min 16: publisher index, sequence, timestamp) */
  readonly payload: number
  /** QoS 1 publishers: PUBLISHes in flight (awaiting PUBACK) per publisher */
  readonly window: number
  /** max messages copied into one socket write */
  readonly batch: number
  /**
   * generator-side cap on deliveries owed to subscribers (published ×
   * subscribers − received); keeps broker queues bounded (QoS 0 has no flow control)
   */
  readonly backlog: number
  readonly fanInPublishers: number
  readonly fanInPublishersHigh: number
  readonly fanOutSubscribers: number
  readonly latencyRate: number
  readonly idleConnections: number
  /** churn: connect-subscribe-publish-disconnect cycles per round (3 rounds) */
  readonly churnCycles: number
  /** churn: cycles in flight at a time */
  readonly churnParallel: number
  readonly sessions: number
  readonly sessionMessages: number
  /** large-packets: payload of each big QoS 1 PUBLISH, bytes */
  readonly largeBytes: number
  /** large-packets: clients probing with PINGREQ + a QoS 1 publish-to-self */
  readonly largeProbes: number
  /** large-packets: each probe client sends one PINGREQ and one publish this often, ms */
  readonly probeIntervalMs: number
  /** large-packets: length of each measured phase (without, then with the big publisher), ms */
  readonly largePhaseMs: number
  /** slow-consumer: QoS 1 messages published in each phase (without, then with the stalled subscriber) */
  readonly slowMessages: number
  /** slow-consumer: payload bytes of each message */
  readonly slowPayload: number
  /** slow-consumer: subscribers that keep reading and acknowledging */
  readonly slowHealthy: number
  /** slow-consumer: publishers sharing the messages */
  readonly slowPublishers: number
  /** auth-flood: length of each measured phase (without, then with the wrong-password flood), ms */
  readonly authPhaseMs: number
  /** auth-flood: new TCP connections with a wrong-password CONNECT opened per second in phase B */
  readonly authFloodRate: number
  /** auth-flood: a flood connection with no CONNACK after this long is counted as a timeout and closed, ms */
  readonly authTimeoutMs: number
  /** throughput runs: give up waiting for in-flight messages after this long in all */
  readonly drainTimeoutMs: number
  /** give up waiting for in-flight messages after this long without progress */
  readonly stallMs: number
}

export interface RunContext {
  readonly broker: RunningBroker
  readonly params: Params
  /** every client a scenario opens, so an aborted run can close them all */
  readonly clients: Set<RawClient>
  aborted: boolean
  log(line: string): void
}

export interface MetricDef {
  readonly key: string
  readonly label: string
  readonly unit: string
  readonly better: "higher" | "lower"
  /**
   * false: print no ours-vs-peer ratio for this metric (a loss % of 0 makes any
   * ratio meaningless; the values side by side say it all). Default true.
   */
  readonly ratio?: boolean
}

export interface RunResult {
  readonly metrics: Readonly<Record<string, number>>
  readonly integrity: Integrity
  /** load generator CPU (this process) during the measured window, % of one core */
  readonly generatorCpu: number
  /** broker process CPU during the measured window, % of one core */
  readonly brokerCpu: number
  /** all other CPU use on the machine during the window, % of one core */
  readonly otherCpu: number
  /** broker peak RSS (VmHWM) at the end of the run, KB */
  readonly brokerPeakRssKb: number
  /** scenario-specific extra numbers */
  readonly extra: Readonly<Record<string, number | string | boolean>>
}

export interface Scenario {
  readonly id: string
  readonly title: string
  readonly description: string
  readonly metrics: ReadonlyArray<MetricDef>
  /** how the brokers are configured for this scenario (default "bench") */
  readonly brokerProfile?: BrokerProfile
  /**
   * the brokers this scenario applies to (default: all); the others have no equivalent (e.g. no
   * cluster of their own on Redis) and are not run, with a note saying so
   */
  readonly only?: ReadonlyArray<BrokerName>
  /** overall time limit of one run beyond warm-up + duration, ms (default 90 s) */
  readonly timeoutMs?: number
  run(ctx: RunContext): Promise<RunResult>
}
