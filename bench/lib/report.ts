/** Aggregation (medians over repetitions) and the printed tables. */
import type { BrokerName } from "./brokers.ts"
import { median } from "./stats.ts"
import type { MetricDef, RunResult, Scenario } from "./types.ts"

export interface RunRecord {
  readonly rep: number
  /** position of this broker in the repetition's order (0-based) */
  readonly position: number
  readonly ok: boolean
  readonly error?: string
  readonly result?: RunResult
  readonly seconds: number
}

export interface BrokerSummary {
  readonly runs: number
  readonly failedRuns: number
  readonly medians: Record<string, number>
  readonly lost: number
  readonly duplicates: number
  readonly reordered: number
  readonly expected: number
  readonly generatorCpu: number
  readonly brokerCpu: number
  readonly otherCpu: number
  readonly brokerPeakRssKb: number
  readonly notes: Array<string>
}

export interface ScenarioReport {
  readonly id: string
  readonly title: string
  readonly description: string
  readonly metrics: ReadonlyArray<MetricDef>
  /** the brokers the scenario applies to; the others were not run (see `Scenario.only`) */
  readonly only?: ReadonlyArray<BrokerName>
  readonly runs: Partial<Record<BrokerName, Array<RunRecord>>>
  summary: Partial<Record<BrokerName, BrokerSummary>>
}

export interface TableRow {
  readonly label: string
  readonly unit: string
  readonly better: "higher" | "lower"
  readonly values: Partial<Record<BrokerName, number>>
  /** >1 means ours is better: ours/peer (higher is better) or peer/ours (lower is better) */
  readonly ratios: Partial<Record<BrokerName, number>>
}

export const newScenarioReport = (s: Scenario): ScenarioReport => ({
  id: s.id,
  title: s.title,
  description: s.description,
  metrics: s.metrics,
  ...(s.only === undefined ? {} : { only: s.only }),
  runs: {},
  summary: {}
})

export const summarize = (rep: ScenarioReport, brokers: ReadonlyArray<BrokerName>): void => {
  for (const b of brokers) {
    const runs = rep.runs[b] ?? []
    const ok = runs.filter((r) => r.ok && r.result !== undefined).map((r) => r.result!)
    const medians: Record<string, number> = {}
    for (const m of rep.metrics) medians[m.key] = median(ok.map((r) => r.metrics[m.key] ?? Number.NaN))
    const notes: Array<string> = []
    if (rep.only !== undefined && !rep.only.includes(b)) notes.push(`not run: no equivalent (the scenario is for ${rep.only.join(", ")} only)`)
    for (const r of runs) if (!r.ok) notes.push(`rep ${r.rep + 1}: ${(r.error ?? "failed").split("\n")[0]}`)
    for (const r of ok) {
      if (r.extra["drained"] === false) {
        notes.push(
          r.extra["qos"] === 0 && r.extra["drainEnded"] === "timeout"
            ? "still delivering when the drain time limit ended the run: its loss includes messages queued in the broker, not only dropped ones"
            : "not every message arrived before the drain timeout"
        )
      }
      // a scenario's own remark about this run (e.g. a phase that stalled)
      const note = r.extra["note"]
      if (typeof note === "string" && note !== "") notes.push(note)
      const spm = r.extra["sessionPresentMissing"]
      if (typeof spm === "number" && spm > 0) notes.push(`${spm} CONNACK(s) without sessionPresent`)
      const early = r.extra["connectionsClosedEarly"]
      if (typeof early === "number" && early > 0) notes.push(`${early} connection(s) closed by the broker`)
    }
    rep.summary[b] = {
      runs: runs.length,
      failedRuns: runs.length - ok.length,
      medians,
      lost: ok.reduce((a, r) => a + r.integrity.lost, 0),
      duplicates: ok.reduce((a, r) => a + r.integrity.duplicates, 0),
      reordered: ok.reduce((a, r) => a + r.integrity.reordered, 0),
      expected: ok.reduce((a, r) => a + r.integrity.expected, 0),
      generatorCpu: median(ok.map((r) => r.generatorCpu)),
      brokerCpu: median(ok.map((r) => r.brokerCpu)),
      otherCpu: median(ok.map((r) => r.otherCpu)),
      brokerPeakRssKb: median(ok.map((r) => r.brokerPeakRssKb)),
      notes: [...new Set(notes)]
    }
  }
}

const ratio = (better: "higher" | "lower", ours: number | undefined, peer: number | undefined): number => {
  if (ours === undefined || peer === undefined || !Number.isFinite(ours) || !Number.isFinite(peer)) return Number.NaN
  if (better === "higher") return peer === 0 ? Number.NaN : ours / peer
  return ours === 0 ? Number.NaN : peer / ours
}

export const buildTable = (reports: ReadonlyArray<ScenarioReport>, brokers: ReadonlyArray<BrokerName>): Array<TableRow> => {
  const rows: Array<TableRow> = []
  const peers = brokers.filter((b) => b !== "ours")
  const push = (label: string, unit: string, better: "higher" | "lower", values: Partial<Record<BrokerName, number>>, withRatio = true): void => {
    const ratios: Partial<Record<BrokerName, number>> = {}
    if (withRatio) for (const p of peers) ratios[p] = ratio(better, values.ours, values[p])
    rows.push({ label, unit, better, values, ratios })
  }
  for (const r of reports) {
    for (const m of r.metrics) {
      const values: Partial<Record<BrokerName, number>> = {}
      for (const b of brokers) {
        const s = r.summary[b]
        if (s !== undefined) values[b] = s.medians[m.key] ?? Number.NaN
      }
      push(m.label, m.unit, m.better, values, m.ratio !== false)
    }
    // a row relating this scenario to another one of the same broker (each broker against itself)
    const relative = (baseId: string, key: string, label: string, of: (value: number, base: number) => number): void => {
      const base = reports.find((x) => x.id === baseId)
      if (base === undefined) return
      const values: Partial<Record<BrokerName, number>> = {}
      for (const b of brokers) {
        const value = r.summary[b]?.medians[key]
        const baseValue = base.summary[b]?.medians[key]
        if (value !== undefined && baseValue !== undefined) values[b] = of(value, baseValue)
      }
      push(label, "x", "higher", values)
    }
    if (r.id === "fanin-q0-32") relative("fanin-q0", "rate", "fan-in scaling 32/8 pubs", (hi, lo) => hi / lo)
    // issue 14: on disk against in memory, as a share of the in-memory speed (Aedes stays in memory)
    if (r.id === "fanin-q1-sqlite") relative("fanin-q1", "rate", "QoS 1 fan-in sqlite/memory", (disk, memory) => disk / memory)
    if (r.id === "persistent-sessions-sqlite") relative("persistent-sessions", "drainMs", "sessions drain sqlite/memory", (disk, memory) => memory / disk)
  }
  return rows
}

// ---------------------------------------------------------------------------
// formatting
// ---------------------------------------------------------------------------

export const fmt = (x: number | undefined, unit = ""): string => {
  if (x === undefined || !Number.isFinite(x)) return "n/a"
  if (unit === "x") return x.toFixed(2)
  // loss: two decimals below 10% so a small but real loss does not print as 0
  if (unit === "%") return x === 0 ? "0" : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2)
  // counts (messages, connections) print as integers
  if (unit === "msgs") return Math.round(x).toLocaleString("en-US")
  const a = Math.abs(x)
  if (a >= 1000) return Math.round(x).toLocaleString("en-US")
  if (a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  if (a >= 1) return x.toFixed(2)
  return x.toFixed(3)
}

const fmtRatio = (x: number | undefined): string =>
  x === undefined ? "-" : !Number.isFinite(x) ? "n/a" : `${x.toFixed(2)}x`

const renderGrid = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, rightAlignFrom: number): string => {
  const widths = header.map((h, i) => Math.max([...h].length, ...rows.map((r) => [...(r[i] ?? "")].length)))
  const line = (cells: ReadonlyArray<string>): string =>
    cells
      .map((c, i) => {
        const pad = " ".repeat(Math.max(0, widths[i]! - [...c].length))
        return i >= rightAlignFrom ? pad + c : c + pad
      })
      .join("  ")
      .trimEnd()
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

export const renderTable = (rows: ReadonlyArray<TableRow>, brokers: ReadonlyArray<BrokerName>, reps: number): string => {
  const peers = brokers.filter((b) => b !== "ours")
  const showRatios = brokers.includes("ours") && peers.length > 0
  const header = [
    "metric",
    "unit",
    "better",
    ...brokers,
    ...(showRatios ? peers.map((p) => `ours vs ${p}`) : [])
  ]
  const body = rows.map((r) => [
    r.label,
    r.unit,
    r.better,
    ...brokers.map((b) => fmt(r.values[b], r.unit)),
    ...(showRatios ? peers.map((p) => fmtRatio(r.ratios[p])) : [])
  ])
  const title = `Results: median of ${reps} run${reps === 1 ? "" : "s"} per broker.` +
    (showRatios
      ? " Ratio columns: >1 means ours is better (higher-is-better rows: ours/peer; lower-is-better rows: peer/ours)."
      : "")
  return `${title}\n${renderGrid(header, body, 3)}`
}

export const renderIntegrity = (reports: ReadonlyArray<ScenarioReport>, brokers: ReadonlyArray<BrokerName>): string => {
  const header = ["scenario", ...brokers.map((b) => `${b} lost/dup/reord`), ...brokers.map((b) => `${b} cpu gen/brk/other`)]
  const body = reports.map((r) => [
    r.title,
    ...brokers.map((b) => {
      const s = r.summary[b]
      if (s === undefined || s.runs === s.failedRuns) return "n/a"
      return `${s.lost}/${s.duplicates}/${s.reordered}${s.failedRuns > 0 ? ` (${s.failedRuns} failed)` : ""}`
    }),
    ...brokers.map((b) => {
      const s = r.summary[b]
      if (s === undefined || s.runs === s.failedRuns) return "n/a"
      return `${fmtPct(s.generatorCpu)}/${fmtPct(s.brokerCpu)}/${fmtPct(s.otherCpu)}`
    })
  ])
  const notes: Array<string> = []
  for (const r of reports) {
    for (const b of brokers) {
      for (const n of r.summary[b]?.notes ?? []) notes.push(`  ${r.title} / ${b}: ${n}`)
    }
  }
  return [
    "Integrity and CPU: lost/duplicate/reordered messages summed over runs (must be 0/0/0, except lost",
    "QoS 0 messages, which a broker may shed by policy: their share is the 'loss' row of the results);",
    "CPU = median % of one core used during the measured window by the load generator / the broker /",
    "everything else on the machine (generator near 100% = the generator may be the bottleneck;",
    "a high 'other' = the run was disturbed by other load).",
    renderGrid(header, body, 1),
    ...(notes.length > 0 ? ["Notes:", ...notes] : [])
  ].join("\n")
}

const fmtPct = (x: number): string => (Number.isFinite(x) ? `${Math.round(x)}%` : "n/a")
