/**
 * Campaign reports as text: the per-class table, each distinct deviation once with its clause,
 * each victim, and the canary / flood figures. Shared by run.ts and the vitest failure messages.
 */
import type { CampaignReport, Deviation, Victim } from "./Campaign.ts"

const pad = (text: string | number, width: number, right = false): string =>
  right ? String(text).padStart(width) : String(text).padEnd(width)

/** The table: class, cases, answered as specified, deviations, innocent victims. */
export const formatTable = (report: CampaignReport): string => {
  const width = Math.max(5, ...report.rows.map((r) => r.cls.length))
  const header = `${pad("class", width)}  ${pad("cases", 6, true)}  ${pad("as specified", 12, true)}  ${pad("deviations", 10, true)}  ${pad("victims", 7, true)}`
  const lines = report.rows.map((r) =>
    `${pad(r.cls, width)}  ${pad(r.cases, 6, true)}  ${pad(r.asSpecified, 12, true)}  ${pad(r.deviations, 10, true)}  ${pad(r.victims, 7, true)}`
  )
  const sum = (key: "cases" | "asSpecified" | "deviations" | "victims") => report.rows.reduce((n, r) => n + r[key], 0)
  const total = `${pad("total", width)}  ${pad(sum("cases"), 6, true)}  ${pad(sum("asSpecified"), 12, true)}  ${pad(sum("deviations"), 10, true)}  ${pad(sum("victims"), 7, true)}`
  const rule = "-".repeat(header.length)
  return [header, rule, ...lines, rule, total].join("\n")
}

/** One deviation: class, bytes, what came back, what the spec allows, the clause. */
export const formatDeviation = (d: Deviation): string =>
  [
    `[${d.cls}] ${d.variant} (MQTT ${d.version === 5 ? "5.0" : d.version === 4 ? "3.1.1" : "3.1"}) — ${d.count} case(s)`,
    `  bytes:    ${d.hex}`,
    `  answered: ${d.answer}`,
    `  allowed:  ${d.allowed.join(" | ")}`,
    `  clause:   ${d.clause}`
  ].join("\n")

/** One victim: the innocent client's failure and the hostile case before it. */
export const formatVictim = (v: Victim): string =>
  `innocent ${v.innocent.clientId} (MQTT ${v.innocent.version === 5 ? "5.0" : "3.1.1"}${v.innocent.full ? ", pub/sub" : ""}): ${v.innocent.detail}\n` +
  `  after [${v.after.cls}] ${v.after.variant}: ${v.after.bytes.subarray(0, 96).toString("hex")}`

/** The canary (and flood) figures. */
export const formatCanary = (report: CampaignReport): string => {
  const c = report.canary
  const lines = [
    `canary: ${c.received}/${c.sent} received, ${c.lost.length} lost${c.lost.length > 0 ? ` (${c.lost.slice(0, 10).join(", ")}${c.lost.length > 10 ? ", …" : ""})` : ""}, ` +
    `${c.duplicates} duplicated, ${c.disconnects} disconnect(s); publish→receive p50 ${c.p50Ms.toFixed(1)} ms, p99 ${c.p99Ms.toFixed(1)} ms, max ${c.maxMs.toFixed(1)} ms`,
    `innocent clients: ${report.innocents}, victims ${report.victims.length}; slowest CONNACK ${report.slowestConnackMs} ms`,
    `broker alive at the end: ${report.brokerAlive === true ? "yes" : `NO — ${report.brokerAlive}`}`
  ]
  if (c.errors.length > 0) lines.push(`canary errors: ${c.errors.slice(0, 5).join("; ")}`)
  if (report.flood !== undefined) {
    const f = report.flood
    lines.push(
      `flood: ${f.connected}/${f.connections} connected, ${f.messagesAcked} × 16 MB acknowledged (${(f.bytesAcked / 2 ** 30).toFixed(2)} GiB)` +
        `${f.failures.length > 0 ? `; failures: ${f.failures.slice(0, 3).join("; ")}` : ""}`,
      `flood targets: canary p99 ${c.p99Ms.toFixed(1)} ms (target ≤ 50 ms) ${c.p99Ms <= 50 ? "ok" : "MISSED"}; ` +
        `slowest fresh-client CONNACK ${report.slowestConnackMs} ms (target ≤ 1000 ms) ${report.slowestConnackMs <= 1000 ? "ok" : "MISSED"}`
    )
  }
  if (report.brokerErrors.length > 0) {
    const distinct = [...new Set(report.brokerErrors.map((line) => line.slice(0, 300)))]
    lines.push(`broker logged ${report.brokerErrors.length} error line(s):`, ...distinct.slice(0, 5).map((line) => `  ${line}`))
  }
  return lines.join("\n")
}

/** The whole report. */
export const formatReport = (report: CampaignReport): string =>
  [
    `seed ${report.seed}, ${report.cases} cases in ${(report.durationMs / 1000).toFixed(1)} s`,
    "",
    formatTable(report),
    "",
    formatCanary(report),
    ...(report.deviations.length > 0 ? ["", `distinct deviations (${report.deviations.length}):`, ...report.deviations.map(formatDeviation)] : []),
    ...(report.victims.length > 0 ? ["", `victims (${report.victims.length}):`, ...report.victims.slice(0, 20).map(formatVictim)] : [])
  ].join("\n")
