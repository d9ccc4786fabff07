/**
 * The brokers under test. Each one is started fresh for every scenario run on
 * a free loopback port and stopped afterwards.
 */
import { spawn, spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { freePort, ManagedProcess, waitForMqtt } from "./procs.ts"

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..")

export type BrokerName = "ours" | "mosquitto" | "aedes"
export const ALL_BROKERS: ReadonlyArray<BrokerName> = ["ours", "mosquitto", "aedes"]

export interface Availability {
  readonly ok: boolean
  readonly version: string
  readonly reason?: string
  /** a command that fixes a missing dependency */
  readonly fix?: string
}

export interface RunningBroker {
  readonly name: BrokerName
  readonly port: number
  readonly pid: number
  readonly proc: ManagedProcess
  stop(): Promise<void>
}

/**
 * How a broker is configured for a run. "bench": the shared queue settings
 * below (huge queues, so throughput runs measure speed, not a queue limit).
 * "defaults": each broker as shipped, so isolation scenarios measure the
 * slow-consumer and large-packet policies an operator gets out of the box.
 */
export type BrokerProfile = "bench" | "defaults"

export interface BrokerSpec {
  readonly name: BrokerName
  readonly label: string
  /** one-time preparation (build, version probe) */
  prepare(opts: { readonly build: boolean; readonly log: (s: string) => void }): Promise<Availability>
  start(profile?: BrokerProfile): Promise<RunningBroker>
}

const STARTUP_TIMEOUT_MS = 15_000

/**
 * Queue settings shared by Mosquitto's config file and our broker's flags:
 * per-client queue large enough that nothing is dropped during the scenarios,
 * and Mosquitto's default outbound QoS 1 window.
 */
export const MAX_QUEUED_MESSAGES = 1_000_000
export const MAX_INFLIGHT_MESSAGES = 20

const startProcess = async (
  name: BrokerName,
  command: string,
  args: (port: number) => ReadonlyArray<string>,
  env: NodeJS.ProcessEnv,
  cleanup: () => void = () => {}
): Promise<RunningBroker> => {
  const port = await freePort()
  const proc = new ManagedProcess(name, command, args(port), { cwd: ROOT, env })
  const stop = async (): Promise<void> => {
    await proc.stop()
    cleanup()
  }
  try {
    await waitForMqtt(port, STARTUP_TIMEOUT_MS, proc)
  } catch (e) {
    await stop()
    const tail = proc.logTail()
    throw new Error(`${e instanceof Error ? e.message : String(e)}${tail ? `\n--- ${name} output ---\n${tail}` : ""}`)
  }
  return { name, port, pid: proc.pid, proc, stop }
}

// ---------------------------------------------------------------------------
// ours: the production build (tsc -> dist/), started with the pinned node
// ---------------------------------------------------------------------------

const runCommand = (command: string, args: ReadonlyArray<string>, timeoutMs: number): Promise<{ code: number | null; output: string }> =>
  new Promise((resolvePromise) => {
    const child = spawn(command, [...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    const keep = (d: Buffer): void => {
      output = (output + d.toString("utf8")).slice(-8_000)
    }
    child.stdout.on("data", keep)
    child.stderr.on("data", keep)
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.once("error", (e) => {
      clearTimeout(timer)
      resolvePromise({ code: -1, output: `${output}\n${e.message}` })
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      resolvePromise({ code, output })
    })
  })

const packageJson = (): { version?: string; scripts?: Record<string, string> } => {
  try {
    return JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version?: string; scripts?: Record<string, string> }
  } catch {
    return {}
  }
}

const gitRev = (): string => {
  const r = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" })
  return r.status === 0 ? r.stdout.trim() : "uncommitted"
}

const ours: BrokerSpec = {
  name: "ours",
  label: "ours",
  async prepare({ build, log }) {
    const pkg = packageJson()
    const version = `${pkg.version ?? "?"} (${gitRev()})`
    if (build) {
      // `npm run build` when the project defines it, else the same tsc call it makes
      const hasScript = pkg.scripts?.["build"] !== undefined
      const [cmd, args]: [string, ReadonlyArray<string>] = hasScript
        ? ["npm", ["run", "--silent", "build"]]
        : [process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"]]
      log(`building ours: ${hasScript ? "npm run build" : "tsc -p tsconfig.build.json"}`)
      const r = await runCommand(cmd, args, 300_000)
      if (r.code !== 0) {
        return { ok: false, version, reason: `build failed (exit ${r.code}):\n${r.output.trim().split("\n").slice(-15).join("\n")}` }
      }
    }
    if (!existsSync(join(ROOT, "dist/main.js"))) {
      return { ok: false, version, reason: "dist/main.js does not exist after the build" }
    }
    return { ok: true, version }
  },
  start(profile = "bench") {
    return startProcess(
      "ours",
      process.execPath,
      (port) => [
        join(ROOT, "dist/main.js"),
        "--port",
        String(port),
        "--host",
        "127.0.0.1",
        // the same queue settings as the Mosquitto config
        ...(profile === "bench"
          ? ["--max-queued-messages", String(MAX_QUEUED_MESSAGES), "--max-inflight-messages", String(MAX_INFLIGHT_MESSAGES)]
          : [])
      ],
      { ...process.env, NODE_ENV: "production" }
    )
  }
}

// ---------------------------------------------------------------------------
// Eclipse Mosquitto, with a generated config file
// ---------------------------------------------------------------------------

/** Mosquitto's config file; "defaults" leaves its queue and in-flight settings at their defaults. */
export const mosquittoConfig = (port: number, profile: BrokerProfile = "bench"): string =>
  [
    `listener ${port} 127.0.0.1`,
    "allow_anonymous true",
    "persistence false",
    // per-client queue above the in-flight window; QoS 0 to online clients is
    // dropped too once a client has this many packets waiting, so keep it huge
    ...(profile === "bench"
      ? [`max_queued_messages ${MAX_QUEUED_MESSAGES}`, "max_queued_bytes 0", `max_inflight_messages ${MAX_INFLIGHT_MESSAGES}`]
      : []),
    "set_tcp_nodelay true",
    "max_connections -1",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "connection_messages false",
    ""
  ].join("\n")

const mosquittoBinary = (): string | undefined => {
  const override = process.env["MOSQUITTO_BIN"]
  const candidates = override !== undefined && override !== "" ? [override] : ["mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/local/bin/mosquitto", "/opt/homebrew/sbin/mosquitto"]
  for (const c of candidates) {
    const r = spawnSync(c, ["-h"], { encoding: "utf8" })
    if (r.error === undefined) return c
  }
  return undefined
}

let mosquittoBin = "mosquitto"

const mosquitto: BrokerSpec = {
  name: "mosquitto",
  label: "mosquitto",
  prepare() {
    const bin = mosquittoBinary()
    if (bin === undefined) {
      return Promise.resolve({ ok: false, version: "missing", reason: "mosquitto is not installed", fix: "apt-get install -y mosquitto" })
    }
    mosquittoBin = bin
    const r = spawnSync(bin, ["-h"], { encoding: "utf8" })
    const m = /mosquitto version (\S+)/.exec(`${r.stdout}${r.stderr}`)
    return Promise.resolve({ ok: true, version: m?.[1] ?? "unknown" })
  },
  start(profile = "bench") {
    const dir = mkdtempSync(join(tmpdir(), "bench-mosquitto-"))
    const conf = join(dir, "mosquitto.conf")
    return startProcess(
      "mosquitto",
      mosquittoBin,
      (port) => {
        writeFileSync(conf, mosquittoConfig(port, profile))
        return ["-c", conf]
      },
      process.env,
      () => rmSync(dir, { recursive: true, force: true })
    )
  }
}

// ---------------------------------------------------------------------------
// Aedes, in its own node process (bench/peers/aedes-server.ts)
// ---------------------------------------------------------------------------

const aedesVersion = (): string | undefined => {
  try {
    const entry = fileURLToPath(import.meta.resolve("aedes"))
    const pkg = JSON.parse(readFileSync(join(dirname(entry), "package.json"), "utf8")) as { version?: string }
    return pkg.version ?? "unknown"
  } catch {
    return undefined
  }
}

const aedes: BrokerSpec = {
  name: "aedes",
  label: "aedes",
  prepare() {
    const v = aedesVersion()
    return Promise.resolve(
      v === undefined
        ? { ok: false, version: "missing", reason: "the aedes package is not installed", fix: "npm install" }
        : { ok: true, version: v }
    )
  },
  // Aedes always runs with its defaults (the bench profile changes nothing there)
  start() {
    return startProcess(
      "aedes",
      process.execPath,
      (port) => [join(ROOT, "bench/peers/aedes-server.ts"), "--port", String(port)],
      { ...process.env, NODE_ENV: "production" }
    )
  }
}

export const BROKERS: Readonly<Record<BrokerName, BrokerSpec>> = { ours, mosquitto, aedes }
