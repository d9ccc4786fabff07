/**
 * `--config FILE` as an operator uses it: the real entrypoint (src/launch.js) run as a child
 * process with a YAML file listing several listeners that mqtt.js clients use; a bad file (one
 * line naming the key and the file, exit 2, nothing listening); `--print-config` (the merged
 * configuration, exit 0, nothing started); `--version` (package.json's version). The unit tests
 * (test/config/ConfigFile.test.ts) cover each refusal; here only that the entrypoint wires them.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Yaml from "effect/encoding/Yaml"
import mqtt from "mqtt"
import { accepts } from "../support/Entrypoint.ts"

const repoRoot = fileURLToPath(new URL("../../", import.meta.url))
const ENTRY = "src/launch.js"
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
/** Generous: the machine is shared (2 cores); alone a start takes about a second. Children run one at a time, beside other e2e files. */
const WITHIN_MS = 15_000
const TEST_TIMEOUT_MS = 30_000

const dir = mkdtempSync(join(tmpdir(), "config-file-e2e-"))
const file = (name: string, text: string): string => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const children = new Set<ChildProcess>()
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
})

interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const start = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const child = spawn(process.execPath, [ENTRY, ...args], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  children.add(child)
  const out = { stdout: "", stderr: "" }
  child.stdout.on("data", (chunk: Buffer) => (out.stdout += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (out.stderr += chunk.toString()))
  const timer = setTimeout(() => child.kill("SIGKILL"), TEST_TIMEOUT_MS)
  const finished = new Promise<Finished>((resolve) => {
    child.once("close", (code) => {
      clearTimeout(timer)
      resolve({ code, ...out })
    })
  })
  return { child, out, finished }
}

const nonEmptyLines = (text: string) => text.split("\n").filter((line) => line.trim() !== "")


/** The bound listeners the broker logged (`listening on tcp://127.0.0.1:40123`), once `count` are up. */
const listening = async (out: { readonly stdout: string; readonly stderr: string }, count: number) => {
  const deadline = Date.now() + WITHIN_MS
  while (Date.now() < deadline) {
    const found = [...out.stdout.matchAll(/listening on (tcp|tls|ws):\/\/([^\s:"]+):(\d+)/g)].map(([, transport, , port]) => ({ transport: transport!, port: Number(port) }))
    if (found.length >= count) return found
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`fewer than ${count} listeners within ${WITHIN_MS} ms\nstdout:\n${out.stdout}\nstderr:\n${out.stderr}`)
}

const connect = (url: string) => mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000 })

describe("--config", () => {
  it("a YAML file with two TCP listeners, a WebSocket and a TLS one: clients on each reach each other, flags still win", async () => {
    const config = file("several.yaml", [
      "# what the broker listens on, every listener on the host key's address unless it names its own",
      "host: 127.0.0.1",
      "maximumQos: 2",
      "maxQueuedMessages: 5",
      // client certificates are asked for (not required) on every TLS listener
      `tlsCa: ${fixture("tls-cert.pem")}`,
      "listeners:",
      "  - transport: tcp",
      "    port: 0",
      "  - transport: tcp",
      "    port: 0",
      "  - transport: ws",
      "    port: 0",
      "  - transport: tls",
      "    port: 0",
      `    key: ${fixture("tls-key.pem")}`,
      `    cert: ${fixture("tls-cert.pem")}`,
      ""
    ].join("\n"))
    // --maximum-qos beats the file's 2: a QoS 2 subscription is granted 1
    const broker = start(["--config", config, "--maximum-qos", "1"])
    const [first, second, ws, tls] = await listening(broker.out, 4)
    expect([first!.transport, second!.transport, ws!.transport, tls!.transport]).toEqual(["tcp", "tcp", "ws", "tls"])
    expect(first!.port).not.toBe(second!.port)

    const subscriber = await connect(`mqtt://127.0.0.1:${first!.port}`)
    const wsSubscriber = await connect(`ws://127.0.0.1:${ws!.port}`)
    const publisher = await connect(`mqtt://127.0.0.1:${second!.port}`)
    // the fixture certificate is self-signed: this checks the listener, not the chain
    const tlsPublisher = await mqtt.connectAsync(`mqtts://127.0.0.1:${tls!.port}`, { reconnectPeriod: 0, connectTimeout: 5_000, rejectUnauthorized: false })
    try {
      expect((await subscriber.subscribeAsync("cfg/t", { qos: 2 }))[0]?.qos).toBe(1)
      await wsSubscriber.subscribeAsync("cfg/t", { qos: 1 })
      const received = (client: mqtt.MqttClient) =>
        new Promise<string>((resolve) => client.once("message", (_topic, payload) => resolve(payload.toString())))
      const both = Promise.all([received(subscriber), received(wsSubscriber)])
      await publisher.publishAsync("cfg/t", "across listeners", { qos: 1 })
      expect(await both).toEqual(["across listeners", "across listeners"])
      const fromTls = received(subscriber)
      await tlsPublisher.publishAsync("cfg/t", "over tls", { qos: 1 })
      expect(await fromTls).toBe("over tls")
    } finally {
      await Promise.all([subscriber.endAsync(true), wsSubscriber.endAsync(true), publisher.endAsync(true), tlsPublisher.endAsync(true)])
    }
    broker.child.kill("SIGTERM")
    expect((await broker.finished).code).toBe(0)
  }, TEST_TIMEOUT_MS)

  const refusals: ReadonlyArray<{ readonly name: string; readonly text: string; readonly line: (path: string) => string }> = [
    { name: "an unknown key", text: "host: 127.0.0.1\nmaxPaketSize: 1024\n", line: (path) => `maxPaketSize in ${path} is not a configuration key (did you mean maxPacketSize?)` },
    { name: "a value of the wrong type", text: "host: 127.0.0.1\nport: [1883]\n", line: (path) => `port: [1883] in ${path} is not a port (0-65535)` },
    { name: "a bad listener", text: "listeners:\n  - { transport: udp, port: 0 }\n", line: (path) => `listeners[0].transport: udp in ${path} is not a transport (tcp, tls, ws)` }
  ]
  for (const { name, text, line } of refusals) {
    it(`${name}: one line naming the key and the file, exit 2, nothing listening`, async () => {
      const path = file(`${name.replace(/\W+/g, "-")}.yaml`, text)
      // the port a start would take: free now, and still free afterwards
      const holder = net.createServer()
      await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", () => resolve()))
      const { port } = holder.address() as net.AddressInfo
      await new Promise<void>((resolve) => holder.close(() => resolve()))
      // the file is checked whole: a value the flag overrides is refused too
      const result = await start(["--config", path, "--port", String(port)]).finished
      const context = `stderr:\n${result.stderr}\nstdout:\n${result.stdout}`
      expect(result.code, context).toBe(2)
      expect(nonEmptyLines(result.stderr), context).toEqual([`effect-mqtt-broker: ${line(path)}`])
      expect(result.stdout, context).not.toContain("listening on")
      expect(await accepts(port)).toBe(false)
    }, TEST_TIMEOUT_MS)
  }

})

describe("--print-config and --version", () => {
  it("--print-config prints the merged configuration in the file's format and exits 0 without listening", async () => {
    const holder = net.createServer()
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", () => resolve()))
    const { port } = holder.address() as net.AddressInfo
    await new Promise<void>((resolve) => holder.close(() => resolve()))
    const yaml = file("print.yaml", `host: 127.0.0.1\nport: ${port}\nmaxQueuedMessages: 5\nmaxInflightMessages: 3\n`)
    const result = await start(["--config", yaml, "--print-config", "--max-queued-messages", "6"], { MQTT_MAX_INFLIGHT_MESSAGES: "4" }).finished
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toBe("")
    const printed = Yaml.parse(result.stdout) as Record<string, unknown>
    // flag > env > file > default
    expect(printed).toMatchObject({ host: "127.0.0.1", port, maxQueuedMessages: 6, maxInflightMessages: 4, maxPacketSize: 33_554_432 })
    expect(result.stdout).not.toContain("listening on")
    expect(await accepts(port)).toBe(false)

    const json = file("print.json", JSON.stringify({ port: 0, noRetain: true }))
    const fromJson = await start(["--config", json, "--print-config"]).finished
    expect(fromJson.code).toBe(0)
    expect(JSON.parse(fromJson.stdout)).toMatchObject({ port: 0, noRetain: true, host: "0.0.0.0" })
  }, TEST_TIMEOUT_MS)

  it("--version prints package.json's version, exit 0", async () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }
    const result = await start(["--version"]).finished
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toBe(`effect-mqtt-broker v${version}`)
  }, TEST_TIMEOUT_MS)
})
