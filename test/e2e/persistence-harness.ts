/**
 * The real entrypoint (`src/main.ts`, as `npm start` runs it) as a child process with SQLite
 * persistence, for tests that kill it with SIGKILL and start it again on the same file. It listens
 * on port 0; the port is read from its "listening on tcp://…" log line.
 */
import { afterEach } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { rmSync } from "node:fs"
import { fileURLToPath } from "node:url"
import mqtt, { type IClientOptions, type MqttClient } from "mqtt"

const repoRoot = fileURLToPath(new URL("../../", import.meta.url))

/** A broker process started by `startProcess`. */
export interface BrokerProcess {
  readonly child: ChildProcess
  readonly port: number
  /** Everything it wrote to stdout and stderr so far. */
  readonly output: () => string
  /** `kill -9`: no shutdown, no last commit. Resolves once it has exited. */
  readonly kill9: () => Promise<void>
}

/** Resolves with the exit code once the process has exited (null when a signal ended it). */
export const exited = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((resolve) => child.once("exit", (code) => resolve(code)))

/** Starts the entrypoint with `args`, without waiting for it to listen. */
export const spawnBroker = (args: ReadonlyArray<string>): { readonly child: ChildProcess; readonly output: () => string } => {
  const chunks: Array<string> = []
  const child = spawn(process.execPath, ["src/main.ts", ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })
  child.stdout?.on("data", (chunk: Buffer) => chunks.push(chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => chunks.push(chunk.toString()))
  return { child, output: () => chunks.join("") }
}

/** Starts the entrypoint on a free loopback port with SQLite persistence on `file`; resolves once it listens. */
export const startProcess = (file: string, extra: ReadonlyArray<string> = [], timeoutMs = 60_000): Promise<BrokerProcess> =>
  startBroker(["--persistence", "sqlite", "--persistence-file", file, ...extra], timeoutMs)

/** The entrypoint on a free loopback port with `args`; resolves once it listens. */
export const startBroker = async (args: ReadonlyArray<string>, timeoutMs = 60_000): Promise<BrokerProcess> => {
  const { child, output } = spawnBroker(["--host", "127.0.0.1", "--port", "0", ...args])
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening on" within ${timeoutMs} ms\n${output()}`)), timeoutMs)
    const look = () => {
      const match = /listening on tcp:\/\/[^\s":]+:(\d+)/.exec(output())
      if (match !== null) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    }
    child.stdout?.on("data", look)
    child.stderr?.on("data", look)
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`broker exited with ${code} before listening\n${output()}`))
    })
  })
  return {
    child,
    port,
    output,
    kill9: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      await exited(child)
    }
  }
}

/** What a client receives: topic, payload and the PUBLISH packet (for its DUP and RETAIN flags). */
export type OnMessage = (topic: string, payload: Buffer, packet: { readonly dup: boolean; readonly retain: boolean }) => void

/**
 * An mqtt.js client that does not reconnect by itself; resolves with the client and its CONNACK's
 * sessionPresent. `onMessage` is attached before CONNECT: a resumed session's messages may arrive
 * in the same read as the CONNACK, before a handler attached afterwards could see them.
 */
export const connect = (
  port: number,
  options: IClientOptions,
  onMessage?: OnMessage
): Promise<{ client: MqttClient; sessionPresent: boolean }> =>
  new Promise((resolve, reject) => {
    const client = mqtt.connect({ host: "127.0.0.1", port, reconnectPeriod: 0, connectTimeout: 10_000, ...options })
    if (onMessage !== undefined) client.on("message", (topic, payload, packet) => onMessage(topic, payload, packet))
    client.once("connect", (connack) => resolve({ client, sessionPresent: connack.sessionPresent }))
    client.once("error", (error) => {
      client.end(true)
      reject(error)
    })
  })

/** Ends a client gracefully (DISCONNECT) and waits for it. */
export const end = (client: MqttClient): Promise<void> => new Promise((resolve) => client.end(false, {}, () => resolve()))

/** Broker processes, clients and temp folders of one test file, ended (kill -9) and removed after each test. */
export const useCleanup = () => {
  const running: Array<BrokerProcess> = []
  const clients: Array<MqttClient> = []
  const dirs: Array<string> = []
  afterEach(async () => {
    for (const client of clients.splice(0)) client.end(true)
    for (const broker of running.splice(0)) await broker.kill9()
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
  })
  return { running, clients, dirs }
}
