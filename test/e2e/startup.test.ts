/**
 * The entrypoint as an operator meets it: `npm start`'s entry (src/launch.js) run as a child
 * process through the pinned Node, with bad configurations, a port in use, an old Node, and
 * SIGTERM. Each refusal must be one line on stderr naming the flag or env variable, the stated
 * exit code, no stack trace, nothing listening, within a few seconds. Children run concurrently.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { generateKeyPairSync } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "@effect/vitest"
import mqtt from "mqtt"
import * as Settings from "../../src/config/Settings.ts"
import { accepts } from "../support/Entrypoint.ts"

const repoRoot = fileURLToPath(new URL("../../", import.meta.url))
const ENTRY = "src/launch.js"
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
const CERT = fixture("tls-cert.pem")
const KEY = fixture("tls-key.pem")
/** Generous for a loaded 2-core machine; a refusal is normally done in about a second. */
const REFUSAL_WITHIN_MS = 8_000
/** Children run side by side on a shared machine: a test waits for its child, not for its neighbours. */
const TEST_TIMEOUT_MS = 15_000

interface Finished {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

const children = new Set<ChildProcess>()
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
})

const start = (command: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const child = spawn(command, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  children.add(child)
  const out = { stdout: "", stderr: "" }
  child.stdout.on("data", (chunk: Buffer) => (out.stdout += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (out.stderr += chunk.toString()))
  const began = Date.now()
  const finished = new Promise<Finished>((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal, ...out, ms: Date.now() - began }))
  })
  return { child, out, finished }
}

/** Runs the entry with `args` and `env`; killed (and reported as such) if it outlives `timeoutMs`. */
const run = async (args: ReadonlyArray<string>, env: Record<string, string> = {}, timeoutMs = REFUSAL_WITHIN_MS, nodeArgs: ReadonlyArray<string> = []) => {
  const { child, finished } = start(process.execPath, [...nodeArgs, ENTRY, ...args], env)
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
  const result = await finished
  clearTimeout(timer)
  return result
}

const nonEmptyLines = (text: string) => text.split("\n").filter((line) => line.trim() !== "")

/** The checks every refusal shares: code, one line naming `names`, no stack, nothing started, in time. */
const expectRefusal = (result: Finished, code: number, ...names: ReadonlyArray<string>) => {
  const context = `stderr:\n${result.stderr}\nstdout:\n${result.stdout}`
  expect(result.signal, context).toBeNull()
  expect(result.code, context).toBe(code)
  const lines = nonEmptyLines(result.stderr)
  expect(lines, context).toHaveLength(1)
  expect(lines[0]).toMatch(/^effect-mqtt-broker: /)
  for (const name of names) expect(lines[0]).toContain(name)
  expect(`${result.stderr}\n${result.stdout}`, context).not.toMatch(/^\s+at /m)
  expect(result.stdout, context).not.toContain("listening on")
  expect(result.ms).toBeLessThan(REFUSAL_WITHIN_MS)
  return lines[0]!
}

/** Asks the OS for a free loopback port (released again before the broker binds it). */
const freePort = async (): Promise<number> => {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}


const waitFor = async (condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await condition()) return true
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return false
}

/** A Node older than 22.19 on this machine (the system one, outside npm's PATH), if there is one. */
const olderNode = (() => {
  for (const path of ["/usr/bin/node", "/usr/local/bin/node"]) {
    try {
      const [major = 0, minor = 0] = execFileSync(path, ["--version"], { encoding: "utf8" }).trim().slice(1).split(".").map(Number)
      if (major < 22 || (major === 22 && minor < 19)) return path
    } catch {
      // not installed there
    }
  }
  return undefined
})()

const dir = mkdtempSync(join(tmpdir(), "startup-test-"))
const otherKey = join(dir, "other-key.pem")
writeFileSync(otherKey, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }))

const host = ["--host", "127.0.0.1"]

describe.concurrent("startup: a bad configuration is one line and exit 2", () => {
  const cases: ReadonlyArray<{ readonly name: string; readonly args: ReadonlyArray<string>; readonly env?: Record<string, string>; readonly names: ReadonlyArray<string> }> = [
    { name: "--port -1", args: ["--port", "-1"], names: ["--port -1", "(0-65535)"] },
    { name: "--port 70000", args: ["--port", "70000"], names: ["--port 70000", "(0-65535)"] },
    { name: "MQTT_PORT=abc", args: [], env: { MQTT_PORT: "abc" }, names: ["MQTT_PORT=abc", "(0-65535)"] },
    { name: "--max-packet-size -5", args: ["--max-packet-size", "-5"], names: ["--max-packet-size -5", "(1-268435455)"] },
    { name: "--maximum-qos 3", args: ["--maximum-qos", "3"], names: ["--maximum-qos 3", "(0-2)"] },
    { name: "--receive-maximum 0", args: ["--receive-maximum", "0"], names: ["--receive-maximum 0", "(1-65535)"] },
    { name: "--max-inflight-messages 0", args: ["--max-inflight-messages", "0"], names: ["--max-inflight-messages 0", "(1-65535)"] },
    { name: "--tls-port without key and certificate", args: ["--tls-port", "0"], names: ["--tls-port", "--tls-key", "--tls-cert"] },
    { name: "a missing TLS file", args: ["--tls-port", "0", "--tls-key", join(dir, "missing.pem"), "--tls-cert", CERT], names: ["--tls-key", "missing.pem", "no such file"] },
    { name: "a TLS key that does not match the certificate", args: ["--tls-port", "0", "--tls-key", otherKey, "--tls-cert", CERT], names: ["--tls-key", "--tls-cert", "does not match"] },
    { name: "a missing TLS CA file", args: ["--tls-port", "0", "--tls-key", KEY, "--tls-cert", CERT, "--tls-ca", join(dir, "missing-ca.pem")], names: ["--tls-ca", "missing-ca.pem", "no such file"] },
    { name: "a TLS CA file that is not PEM", args: ["--tls-port", "0", "--tls-key", KEY, "--tls-cert", CERT, "--tls-ca", KEY], names: ["--tls-ca", "not a PEM certificate"] },
    { name: "an unknown flag", args: ["--prot", "1883"], names: ["--prot"] }
  ]
  for (const { name, args, env, names } of cases) {
    it(name, async () => {
      const port = await freePort()
      // a port of our own unless the case sets it (a flag would win over MQTT_PORT)
      const own = !args.includes("--port") && env?.MQTT_PORT === undefined
      expectRefusal(await run([...host, ...(own ? ["--port", String(port)] : []), ...args], env), 2, ...names)
      if (own) expect(await accepts(port)).toBe(false)
    }, TEST_TIMEOUT_MS)
  }
})

describe.concurrent("startup: runtime failures, old Node, help", () => {
  it("a port already in use: exit 1, one line with the listener, address and cause", async () => {
    const holder = net.createServer()
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", () => resolve()))
    const { port } = holder.address() as net.AddressInfo
    try {
      const line = expectRefusal(await run([...host, "--port", String(port)]), 1)
      expect(line).toBe(`effect-mqtt-broker: cannot listen on tcp://127.0.0.1:${port}: address already in use`)
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()))
    }
  }, TEST_TIMEOUT_MS)

  it("a WebSocket port in use after TCP started: exit 1, and the TCP listener is closed again", async () => {
    const holder = net.createServer()
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", () => resolve()))
    const { port: wsPort } = holder.address() as net.AddressInfo
    const tcpPort = await freePort()
    try {
      const line = expectRefusal(await run([...host, "--port", String(tcpPort), "--ws-port", String(wsPort)]), 1)
      expect(line).toBe(`effect-mqtt-broker: cannot listen on ws://127.0.0.1:${wsPort}: address already in use`)
      expect(await accepts(tcpPort)).toBe(false)
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()))
    }
  }, TEST_TIMEOUT_MS)

  it("a Node older than 22.19 is told so in one line, exit 1", async () => {
    const pretend = `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.11.0"})`
    const line = expectRefusal(await run([...host], {}, REFUSAL_WITHIN_MS, ["--import", pretend]), 1)
    expect(line).toBe("effect-mqtt-broker: needs Node >= 22.19 (this is 20.11.0); run it through npm start, which uses the pinned Node 24")
  }, TEST_TIMEOUT_MS)

  it.skipIf(olderNode === undefined)("a real older Node (the system one) is told the same", async () => {
    const { finished } = start(olderNode!, [ENTRY, ...host])
    const line = expectRefusal(await finished, 1)
    expect(line).toMatch(/^effect-mqtt-broker: needs Node >= 22\.19 \(this is \d+\.\d+\.\d+\); run it through npm start/)
  }, TEST_TIMEOUT_MS)

  it("--help lists every option with its env variable and default, exit 0", async () => {
    const result = await run(["--help"])
    expect(result.code).toBe(0)
    for (const setting of Object.values(Settings.settings)) {
      const line = result.stdout.split("\n").find((text) => text.trimStart().startsWith(`--${setting.flag} `))
      expect(line, `--${setting.flag} in --help`).toBeDefined()
      expect(line).toContain(`env ${setting.env}, default `)
    }
  }, TEST_TIMEOUT_MS)
})

describe("startup: npm start and SIGTERM", () => {
  it("SIGTERM to the npm process: clean exit 0, nothing listening within 5 s, 'broker stopped' the last line", async () => {
    const port = await freePort()
    const npm = start("npm", ["start", "--silent", "--", ...host, "--port", String(port)])
    const context = () => `stdout:\n${npm.out.stdout}\nstderr:\n${npm.out.stderr}`
    expect(await waitFor(() => accepts(port), 10_000), context()).toBe(true)

    // a connected client must not hold the shutdown up, and its last line comes before "broker stopped"
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5_000 })
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve())
      client.once("error", reject)
    })

    npm.child.kill("SIGTERM")
    expect(await waitFor(async () => !(await accepts(port)), 5_000), context()).toBe(true)
    const finished = await npm.finished
    client.end(true)
    expect(finished.code, context()).toBe(0)
    expect(nonEmptyLines(finished.stdout).at(-1), context()).toContain("broker stopped")
    expect(finished.stderr.trim(), context()).toBe("")
  }, 20_000)
})
