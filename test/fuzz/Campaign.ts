/**
 * The fuzz campaign both entry points run: one live broker, a canary streaming through it, hostile
 * cases sent concurrently (each on a fresh connection, each followed at once by an innocent
 * client), optionally a flood of large uploads; then every case judged against its allowed
 * answers, every innocent checked, the canary and the broker's liveness checked.
 */
import * as fc from "fast-check"
import { startTestBroker } from "../support/TestBroker.ts"
import { describeObservation, isAllowed, type Observation } from "./Answers.ts"
import { Canary, type CanaryReport } from "./Canary.ts"
import { type FuzzBroker, startChildBroker } from "./ChildBroker.ts"
import { anyCase, type Case, classes, type FuzzEnv } from "./Classes.ts"
import { type FloodReport, startFloodWorker } from "./Flood.ts"
import { innocent, type InnocentResult } from "./Innocent.ts"
import { probe, willTopicOf } from "./Probe.ts"

/** Broker limits for a normal run: small enough that oversize packets are cheap to send whole. */
export const BROKER_CONFIG = { maxPacketSize: 64 * 1024, connectTimeoutMs: 2000, maxClientIdLength: 128, topicAliasMaximum: 10 } as const
/** Broker limits for `--flood`: 16 MB uploads must fit. */
export const FLOOD_BROKER_CONFIG = { ...BROKER_CONFIG, maxPacketSize: 32 * 1024 * 1024 } as const

/** How the campaign runs. */
export interface CampaignOptions {
  readonly cases: number
  readonly seed: number
  /** Hostile connections at once (default 12). */
  readonly concurrency?: number
  /** 50 connections streaming 16 MB QoS 1 PUBLISHes throughout. */
  readonly flood?: boolean
  /** Every n-th innocent client also subscribes, publishes and receives (default 4). */
  readonly fullInnocentEvery?: number
  /** An innocent client's deadline per step (default 2000 ms). */
  readonly innocentTimeoutMs?: number
  /** Stop starting new cases after this long (default: no limit). */
  readonly maxDurationMs?: number
  /** Called after each case. */
  readonly progress?: (done: number, total: number) => void
}

/** One case, what the broker did, and the verdict. */
export interface CaseResult {
  readonly index: number
  readonly case: Case
  readonly observation: Observation
  /** Extra findings outside the connection itself (a will that was published). */
  readonly findings: ReadonlyArray<string>
  readonly asSpecified: boolean
}

/** An innocent client that was not served, and the hostile case it followed. */
export interface Victim {
  readonly after: Case
  readonly innocent: InnocentResult
}

/** One distinct deviation (same class, clause and kind of answer), with its shortest example. */
export interface Deviation {
  readonly cls: string
  readonly variant: string
  readonly version: number
  readonly clause: string
  readonly hex: string
  readonly answer: string
  readonly allowed: ReadonlyArray<string>
  readonly count: number
}

/** Per-class counts for the table. */
export interface ClassRow {
  readonly cls: string
  readonly cases: number
  readonly asSpecified: number
  readonly deviations: number
  readonly victims: number
}

/** Everything a campaign found. */
export interface CampaignReport {
  readonly seed: number
  readonly cases: number
  readonly durationMs: number
  readonly rows: ReadonlyArray<ClassRow>
  readonly results: ReadonlyArray<CaseResult>
  readonly deviations: ReadonlyArray<Deviation>
  readonly victims: ReadonlyArray<Victim>
  readonly innocents: number
  readonly slowestConnackMs: number
  readonly canary: CanaryReport
  /** A fresh client could connect, subscribe, publish and receive at the end. */
  readonly brokerAlive: string | true
  /** ERROR / FATAL lines the broker logged. */
  readonly brokerErrors: ReadonlyArray<string>
  readonly flood: FloodReport | undefined
}

/** The environment the generators aim at, for a broker started with `config`. */
export const envFor = (config: typeof BROKER_CONFIG | typeof FLOOD_BROKER_CONFIG, flood: boolean): FuzzEnv => ({
  maxPacketSize: config.maxPacketSize,
  topicAliasMaximum: config.topicAliasMaximum,
  maxClientIdLength: config.maxClientIdLength,
  connectTimeoutMs: config.connectTimeoutMs,
  // under the flood the broker is busy: give answers more time before calling a silence a deviation
  waitMs: flood ? 5000 : 1500
})

/** The `count` cases a seed stands for (the same seed always gives the same cases). */
export const casesFor = (env: FuzzEnv, seed: number, count: number): ReadonlyArray<Case> =>
  count === 0 ? [] : fc.sample(anyCase(env), { seed, numRuns: count })

const hexOf = (bytes: Buffer): string =>
  bytes.length <= 96 ? bytes.toString("hex") : `${bytes.subarray(0, 96).toString("hex")}… (${bytes.length} bytes)`

/** A case that ran and was answered otherwise than allowed (a case whose setup failed did not run: its probe is a victim). */
const isDeviation = (result: CaseResult): boolean => !result.asSpecified && result.observation.setupError === undefined

/** Groups failing cases into distinct deviations (timings blurred so one behaviour is one entry). */
const distinctDeviations = (results: ReadonlyArray<CaseResult>): Array<Deviation> => {
  const byKey = new Map<string, { example: CaseResult; answer: string; count: number }>()
  for (const result of results) {
    if (!isDeviation(result)) continue
    const answer = [describeObservation(result.observation), ...result.findings].join("; ")
    const key = `${result.case.cls}|${result.case.version}|${result.case.expect.clause}|${answer.replace(/\d+ ms/g, "N ms")}`
    const known = byKey.get(key)
    if (known === undefined) byKey.set(key, { example: result, answer, count: 1 })
    else {
      known.count++
      if (result.case.bytes.length < known.example.case.bytes.length) {
        known.example = result
        known.answer = answer
      }
    }
  }
  return [...byKey.values()].map(({ answer, count, example }) => ({
    cls: example.case.cls,
    variant: example.case.variant,
    version: example.case.version,
    clause: example.case.expect.clause,
    hex: hexOf(example.case.bytes),
    answer,
    allowed: example.case.expect.allowed.map((a) => a.label),
    count
  }))
}

/**
 * Runs `cases` against a broker on `port`, `concurrency` at a time; right after each case's bytes
 * are sent, an innocent client connects (every `fullEvery`-th also publishes and subscribes).
 */
export async function runCases(
  port: number,
  cases: ReadonlyArray<Case>,
  options: { concurrency: number; fullEvery: number; innocentTimeoutMs: number; deadline: number; progress?: (done: number, total: number) => void }
): Promise<{ results: Array<CaseResult>; innocents: Array<{ index: number; result: InnocentResult }> }> {
  const results: Array<CaseResult> = []
  const innocents: Array<Promise<{ index: number; result: InnocentResult }>> = []
  let next = 0
  let done = 0
  const worker = async () => {
    for (;;) {
      const index = next++
      if (index >= cases.length || Date.now() > options.deadline) return
      const c = cases[index]!
      const observation = await probe(port, c, `p${index}`, () => {
        const version = index % 2 === 0 ? 4 : 5
        innocents.push(innocent(port, `i${index}`, version, index % options.fullEvery === 0, options.innocentTimeoutMs).then((result) => ({ index, result })))
      })
      results.push({ index, case: c, observation, findings: [], asSpecified: isAllowed(c.expect, observation) })
      options.progress?.(++done, cases.length)
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  return { results: results.sort((a, b) => a.index - b.index), innocents: await Promise.all(innocents) }
}

/** Marks the cases a stray will / late PUBLISH came from (a will topic names its probe, a late topic is in its bytes). */
const attributeStrays = (results: Array<CaseResult>, strays: CanaryReport["strays"]): Array<CaseResult> =>
  results.map((result) => {
    // a probe whose setup failed never sent its DISCONNECT: its will is due when it drops the connection
    if (result.observation.setupError !== undefined) return result
    const mine = strays.filter(({ topic }) => topic === willTopicOf(`p${result.index}`) || result.case.bytes.includes(Buffer.from(topic)))
    if (mine.length === 0) return result
    return {
      ...result,
      asSpecified: false,
      findings: mine.map(({ topic }) => `published on ${topic} although the client had sent DISCONNECT`)
    }
  })

/** Runs a whole campaign on its own broker. */
export async function runCampaign(options: CampaignOptions): Promise<CampaignReport> {
  const started = Date.now()
  const flood = options.flood === true
  const config = flood ? FLOOD_BROKER_CONFIG : BROKER_CONFIG
  const env = envFor(config, flood)
  // under the flood the broker gets a process of its own, as in production: what the canary measures
  // is then the broker's latency, not that of one event loop shared with every probe
  const broker: FuzzBroker = flood ? await startChildBroker(config) : await startTestBroker(config)
  try {
    const canary = await Canary.start(broker.url, 20)
    const flooding = flood ? startFloodWorker(broker.port, 50, 16 * 1024 * 1024) : undefined
    const cases = casesFor(env, options.seed, options.cases)
    const run = await runCases(broker.port, cases, {
      concurrency: options.concurrency ?? 12,
      fullEvery: options.fullInnocentEvery ?? 4,
      innocentTimeoutMs: options.innocentTimeoutMs ?? 2000,
      deadline: options.maxDurationMs === undefined ? Infinity : started + options.maxDurationMs,
      ...(options.progress === undefined ? {} : { progress: options.progress })
    })
    const floodReport = await flooding?.stop()
    const canaryReport = await canary.stop(5000)
    const final = await innocent(broker.port, "alive-check", 5, true, 5000)
    const results = attributeStrays(run.results, canaryReport.strays)
    // a probe whose own valid CONNECT went unanswered is a victim of what came before, not a deviation of its class
    const setupVictims: Array<Victim> = results.filter((r) => r.observation.setupError !== undefined).map((r) => ({
      after: r.case,
      innocent: { clientId: `p${r.index}`, version: r.case.version, full: false, ok: false, connackMs: undefined, detail: `valid CONNECT before the hostile bytes: ${r.observation.setupError}` }
    }))
    const victims: Array<Victim> = [
      ...run.innocents.filter(({ result }) => !result.ok).map(({ index, result }) => ({ after: cases[index]!, innocent: result })),
      ...setupVictims
    ]
    const rows: Array<ClassRow> = classes.map((cls) => {
      const mine = results.filter((r) => r.case.cls === cls.name)
      return {
        cls: cls.name,
        cases: mine.length,
        asSpecified: mine.filter((r) => r.asSpecified).length,
        deviations: mine.filter(isDeviation).length,
        victims: victims.filter((v) => v.after.cls === cls.name).length
      }
    })
    return {
      seed: options.seed,
      cases: results.length,
      durationMs: Date.now() - started,
      rows,
      results,
      deviations: distinctDeviations(results),
      victims,
      innocents: run.innocents.length,
      slowestConnackMs: Math.max(0, ...run.innocents.flatMap(({ result }) => (result.connackMs === undefined ? [] : [result.connackMs]))),
      canary: canaryReport,
      brokerAlive: final.ok ? true : final.detail,
      brokerErrors: broker.logs.filter((line) => /^(ERROR|FATAL)/.test(line)),
      flood: floodReport
    }
  } finally {
    await broker.stop()
  }
}

/** Why a campaign failed; empty when it passed (no victim, canary clean, broker alive, no deviation). */
export const failuresOf = (report: CampaignReport): Array<string> => {
  const failures: Array<string> = []
  if (report.victims.length > 0) failures.push(`${report.victims.length} innocent victim(s)`)
  const c = report.canary
  if (c.lost.length > 0 || c.duplicates > 0 || c.disconnects > 0) {
    failures.push(`canary: ${c.lost.length} lost, ${c.duplicates} duplicated, ${c.disconnects} disconnect(s)`)
  }
  if (report.brokerAlive !== true) failures.push(`broker not alive at the end: ${report.brokerAlive}`)
  const deviating = report.results.filter(isDeviation).length
  if (report.brokerErrors.length > 0) failures.push(`broker logged ${report.brokerErrors.length} unhandled error(s)`)
  if (deviating > 0) failures.push(`${deviating} case(s) answered otherwise than specified (${report.deviations.length} distinct)`)
  return failures
}
