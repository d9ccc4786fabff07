/**
 * The brokers under test. Each one is started fresh for every scenario run on
 * a free loopback port and stopped afterwards.
 */
import { spawn, spawnSync } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { freePort, ManagedProcess, trackChild, waitForMqtt } from "./procs.ts"
import { start as startRedis } from "./redis.ts"
import type { RedisServer } from "./redis.ts"

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
  /** "cluster" profile: the redis-server the broker is a cluster node on (stopped with it) */
  readonly redis?: RedisServer
  /** "heap" profile, Node brokers: where `bench/peers/heap-probe.mjs` writes the heap on SIGUSR2 (see `readHeap`) */
  readonly heapFile?: string
  stop(): Promise<void>
}

/**
 * How a broker is configured for a run. "bench": the shared queue settings
 * below (huge queues, so throughput runs measure speed, not a queue limit).
 * "defaults": each broker as shipped, so isolation scenarios measure the
 * slow-consumer and large-packet policies an operator gets out of the box.
 */
export type BrokerProfile = "bench" | "defaults" | "auth" | "sqlite" | "heap" | "cluster"

/*
 * "cluster" (ours only: the `scale-out` scenario): "bench" plus a fresh redis-server started by the
 * harness (and stopped with the broker), ours a cluster node on it (`--persistence redis --cluster`).
 * More nodes or `--workers` on a Redis come from `startOursOnRedis`.
 */

/**
 * "heap": "bench" plus, for the Node brokers (ours, Aedes), `bench/peers/heap-probe.mjs`
 * preloaded with `--expose-gc`, so `readHeap` can ask the process for its live heap after a full
 * collection. Mosquitto runs as on "bench" (no heap to ask for: RSS only).
 */
const HEAP_PROBE = resolve(dirname(fileURLToPath(import.meta.url)), "../peers/heap-probe.mjs")

/** Node flags and environment that install the heap probe, writing to a fresh file in a temp dir. */
const heapProbe = (): { readonly flags: ReadonlyArray<string>; readonly env: NodeJS.ProcessEnv; readonly file: string; readonly dir: string } => {
  const dir = mkdtempSync(join(tmpdir(), "bench-heap-"))
  const file = join(dir, "heap.json")
  return { flags: ["--expose-gc", "--import", HEAP_PROBE], env: { BENCH_HEAP_FILE: file }, file, dir }
}

/** What `bench/peers/heap-probe.mjs` reports: the heap after a full GC, KB. */
export interface HeapReading {
  readonly usedHeapKb: number
  readonly totalHeapKb: number
  readonly externalKb: number
}

/**
 * Asks a broker started on the "heap" profile for its live heap (SIGUSR2: a full GC, then the
 * numbers written to its heap file); undefined for a broker without the probe (Mosquitto) or
 * when no answer came within `timeoutMs`.
 */
export const readHeap = async (broker: RunningBroker, timeoutMs = 10_000): Promise<HeapReading | undefined> => {
  const file = broker.heapFile
  if (file === undefined) return undefined
  rmSync(file, { force: true })
  process.kill(broker.pid, "SIGUSR2")
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as HeapReading
    await new Promise((r) => setTimeout(r, 20))
  }
  return undefined
}

/**
 * "sqlite": "bench" with sessions and retained messages on disk. Ours runs with
 * `--persistence sqlite` on a fresh file in a temp dir; Mosquitto with its own
 * `persistence true` (a snapshot on shutdown and at its autosave interval, not
 * written through); Aedes has no persistence in this harness and runs in memory.
 * The sqlite rows exist to compare ours with ours on the "bench" profile.
 */
const usesBenchQueues = (profile: BrokerProfile): boolean =>
  profile === "bench" || profile === "sqlite" || profile === "heap" || profile === "cluster"


/**
 * The one account of the "auth" profile: "defaults" plus authentication on,
 * with a Mosquitto 2 password file holding this user, written at start time
 * by Debian's `mosquitto_passwd` (ours and Mosquitto read it; Aedes gets the
 * same pair for its authenticate hook).
 */
export const AUTH_USER = "bench"
/** The password of `AUTH_USER`. */
export const AUTH_PASSWORD = "bench-pass"
const AUTH = { username: AUTH_USER, password: AUTH_PASSWORD } as const

/** What to install when `mosquitto_passwd` is missing. */
export const MOSQUITTO_PASSWD_FIX = "apt-get install -y mosquitto"

/**
 * Writes a password file with `AUTH_USER` into `dir` with `mosquitto_passwd -b -c`
 * and returns its path; throws with the install hint when the tool is missing
 * (the run is then reported as failed, like a missing mosquitto).
 */
export const writePasswordFile = (dir: string): string => {
  const file = join(dir, "passwords")
  const bin = process.env["MOSQUITTO_PASSWD_BIN"] || "mosquitto_passwd"
  const r = spawnSync(bin, ["-b", "-c", file, AUTH_USER, AUTH_PASSWORD], { encoding: "utf8" })
  if (r.error !== undefined) throw new Error(`${bin} is not installed (fix: ${MOSQUITTO_PASSWD_FIX})`)
  if (r.status !== 0) throw new Error(`${bin} failed (exit ${r.status}): ${`${r.stdout}${r.stderr}`.trim()}`)
  return file
}

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
  cleanup: () => void = () => {},
  auth = false
): Promise<RunningBroker> => {
  const port = await freePort()
  const proc = new ManagedProcess(name, command, args(port), { cwd: ROOT, env })
  const stop = async (): Promise<void> => {
    await proc.stop()
    cleanup()
  }
  try {
    await waitForMqtt(port, STARTUP_TIMEOUT_MS, proc, auth ? AUTH : {})
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
    if (!existsSync(join(ROOT, "dist/start/main.js"))) {
      return { ok: false, version, reason: "dist/start/main.js does not exist after the build" }
    }
    return { ok: true, version }
  },
  async start(profile = "bench") {
    if (profile === "cluster") {
      const redis = await startRedis({ onSpawn: trackChild, binary: redisBinary() })
      try {
        const node = await startOursOnRedis(redis.url)
        return {
          ...node,
          redis,
          stop: async () => {
            await node.stop()
            await redis.stop()
          }
        }
      } catch (e) {
        await redis.stop()
        throw e
      }
    }
    // BENCH_OURS_METRICS=1: ours serves /metrics on a free port, scraped every second while it runs
    // (15 times Prometheus' default rate), to measure what metrics cost the message path
    const metricsPort = process.env["BENCH_OURS_METRICS"] === "1" ? await freePort() : undefined
    const auth = profile === "auth"
    const sqlite = profile === "sqlite"
    const dir = auth || sqlite ? mkdtempSync(join(tmpdir(), "bench-ours-")) : undefined
    let passwords: string
    try {
      passwords = dir === undefined ? "" : writePasswordFile(dir)
    } catch (e) {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
      return Promise.reject(e)
    }
    const probe = profile === "heap" ? heapProbe() : undefined
    const started = await startProcess(
      "ours",
      process.execPath,
      (port) => [
        // BENCH_OURS_NODE_FLAGS: extra Node flags for profiling ours (e.g. "--trace-gc", "--cpu-prof")
        ...(process.env["BENCH_OURS_NODE_FLAGS"] ?? "").split(" ").filter((flag) => flag !== ""),
        ...(probe?.flags ?? []),
        join(ROOT, "dist/start/main.js"),
        "--port",
        String(port),
        "--host",
        "127.0.0.1",
        // the same queue settings as the Mosquitto config
        ...(usesBenchQueues(profile)
          ? ["--max-queued-messages", String(MAX_QUEUED_MESSAGES), "--max-inflight-messages", String(MAX_INFLIGHT_MESSAGES)]
          : []),
        ...(auth ? ["--password-file", passwords] : []),
        ...(metricsPort === undefined ? [] : ["--metrics-port", String(metricsPort)]),
        ...(sqlite && dir !== undefined ? ["--persistence", "sqlite", "--persistence-file", join(dir, "sessions.db")] : [])
      ],
      { ...process.env, NODE_ENV: "production", ...probe?.env },
      () => {
        if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
        if (probe !== undefined) rmSync(probe.dir, { recursive: true, force: true })
      },
      auth
    )
    const running: RunningBroker = probe === undefined ? started : { ...started, heapFile: probe.file }
    if (metricsPort === undefined) return running
    const scraper = setInterval(() => {
      fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((response) => response.text(), () => "").catch(() => "")
    }, 1000)
    return {
      ...running,
      stop: () => {
        clearInterval(scraper)
        return running.stop()
      }
    }
  }
}

/** REDIS_SERVER_BIN: the redis-server the "cluster" profile starts, instead of the one on PATH. */
export const redisBinary = (): string | undefined => {
  const override = process.env["REDIS_SERVER_BIN"]
  return override === undefined || override === "" ? undefined : override
}

/** Extra Node flags for ours from BENCH_OURS_NODE_FLAGS (e.g. "--trace-gc", "--cpu-prof"). */
const oursNodeFlags = (): Array<string> => (process.env["BENCH_OURS_NODE_FLAGS"] ?? "").split(" ").filter((flag) => flag !== "")

/**
 * Starts ours (the build in dist/) with the bench queues on the Redis at `redisUrl`: one cluster
 * node (`--persistence redis --cluster`), or with `workers` > 1 a `--workers N` supervisor whose
 * workers share its port (resolves once all of them listen, from their log lines).
 */
export const startOursOnRedis = async (redisUrl: string, workers = 1): Promise<RunningBroker> => {
  const running = await startProcess(
    "ours",
    process.execPath,
    (port) => [
      ...oursNodeFlags(),
      join(ROOT, "dist/start/main.js"),
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
      "--max-queued-messages",
      String(MAX_QUEUED_MESSAGES),
      "--max-inflight-messages",
      String(MAX_INFLIGHT_MESSAGES),
      "--persistence",
      "redis",
      "--redis-url",
      redisUrl,
      ...(workers > 1 ? ["--workers", String(workers)] : ["--cluster"])
    ],
    { ...process.env, NODE_ENV: "production" }
  )
  if (workers <= 1) return running
  // the port answers once the first worker listens; the others may still be starting
  const deadline = Date.now() + STARTUP_TIMEOUT_MS
  const listening = (): number => running.proc.logTail(16_384).split("listening on tcp://").length - 1
  while (listening() < workers) {
    if (running.proc.exited || Date.now() > deadline) {
      const tail = running.proc.logTail()
      await running.stop()
      throw new Error(`ours --workers ${workers}: ${listening()} worker(s) listening after ${STARTUP_TIMEOUT_MS} ms\n--- ours output ---\n${tail}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return running
}

// ---------------------------------------------------------------------------
// Eclipse Mosquitto, with a generated config file
// ---------------------------------------------------------------------------

/** Mosquitto's config file; a password file turns anonymous access off; "defaults" and "auth" leave its queue and in-flight settings at their defaults. */
export const mosquittoConfig = (port: number, profile: BrokerProfile = "bench", passwordFile?: string, dir?: string): string =>
  [
    `listener ${port} 127.0.0.1`,
    ...(passwordFile !== undefined ? [`password_file ${passwordFile}`, "allow_anonymous false"] : ["allow_anonymous true"]),
    ...(profile === "sqlite" && dir !== undefined ? ["persistence true", `persistence_location ${dir}/`] : ["persistence false"]),
    // per-client queue above the in-flight window; QoS 0 to online clients is
    // dropped too once a client has this many packets waiting, so keep it huge
    ...(usesBenchQueues(profile)
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
    const auth = profile === "auth"
    let passwords: string | undefined
    try {
      passwords = auth ? writePasswordFile(dir) : undefined
      // started as root, Mosquitto drops to its own user before it reads the
      // password file: that user must be able to enter the (0700) temp dir
      if (auth) chmodSync(dir, 0o711)
    } catch (e) {
      rmSync(dir, { recursive: true, force: true })
      return Promise.reject(e)
    }
    return startProcess(
      "mosquitto",
      mosquittoBin,
      (port) => {
        if (profile === "sqlite") chmodSync(dir, 0o777)
        writeFileSync(conf, mosquittoConfig(port, profile, passwords, dir))
        return ["-c", conf]
      },
      process.env,
      () => rmSync(dir, { recursive: true, force: true }),
      auth
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
  // Aedes always runs with its defaults (the bench profile changes nothing there);
  // "auth" adds an authenticate hook with the same account as the password file; "heap" the heap probe
  async start(profile = "bench") {
    const auth = profile === "auth"
    const probe = profile === "heap" ? heapProbe() : undefined
    const started = await startProcess(
      "aedes",
      process.execPath,
      (port) => [
        ...(probe?.flags ?? []),
        join(ROOT, "bench/peers/aedes-server.ts"),
        "--port",
        String(port),
        ...(auth ? ["--auth", `${AUTH_USER}:${AUTH_PASSWORD}`] : [])
      ],
      { ...process.env, NODE_ENV: "production", ...probe?.env },
      () => {
        if (probe !== undefined) rmSync(probe.dir, { recursive: true, force: true })
      },
      auth
    )
    return probe === undefined ? started : { ...started, heapFile: probe.file }
  }
}

export const BROKERS: Readonly<Record<BrokerName, BrokerSpec>> = { ours, mosquitto, aedes }
