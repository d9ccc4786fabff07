import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"
import { fileURLToPath } from "node:url"
import { afterEach, describe, expect, it } from "@effect/vitest"
import type { RunningBroker } from "./harness.ts"
import { sleep, useE2E } from "./harness.ts"

const e2e = useE2E()

const repoRoot = fileURLToPath(new URL("../../", import.meta.url))
const ENTRYPOINT = "src/main.ts"

/** Asks the OS for a free loopback port (released again before the broker binds it). */
async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Resolves once a TCP connection to `port` succeeds; fails after `timeoutMs` or if the child exits. */
async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`entrypoint exited early (code ${child.exitCode}, signal ${child.signalCode})`)
    }
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ port, host: "127.0.0.1" })
      socket.once("connect", () => {
        socket.destroy()
        resolve(true)
      })
      socket.once("error", () => resolve(false))
    })
    if (accepted) return
    await sleep(100)
  }
  throw new Error(`port ${port} did not accept connections within ${timeoutMs} ms`)
}

/** Resolves with the exit code, or `undefined` if the process is still running after `timeoutMs`. */
function waitForExit(child: ChildProcess, timeoutMs: number): Promise<number | null | undefined> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), timeoutMs)
    child.once("exit", (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })
}

let child: ChildProcess | undefined

afterEach(async () => {
  const running = child
  child = undefined
  if (running !== undefined && running.exitCode === null && running.signalCode === null) {
    running.kill("SIGKILL")
    await waitForExit(running, 2_000)
  }
})

describe("entrypoint", () => {
  it("src/main.ts serves MQTT on --port/--host and exits 0 on SIGTERM", async () => {
    const port = await freePort()
    const output: Array<string> = []
    const proc = spawn(process.execPath, [ENTRYPOINT, "--port", String(port), "--host", "127.0.0.1"], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"]
    })
    child = proc
    proc.stdout?.on("data", (chunk: Buffer) => output.push(chunk.toString()))
    proc.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()))

    try {
      await waitForPort(port, proc, 8_000)
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- entrypoint output ---\n${output.join("")}`)
    }

    const broker: RunningBroker = { port, url: `mqtt://127.0.0.1:${port}`, stop: async () => {} }
    const subscriber = await e2e.client(broker)
    expect(await subscriber.subscribe("entry/t", 1)).toEqual([1])
    const publisher = await e2e.client(broker)
    await publisher.publish("entry/t", "through-main", { qos: 1 })
    expect((await subscriber.waitForMessage("entry/t", "through-main")).qos).toBe(1)

    // Clients stay connected: shutdown must not wait for them to leave.
    expect(proc.kill("SIGTERM")).toBe(true)
    const code = await waitForExit(proc, 5_000)
    expect(code, `exit code after SIGTERM\n--- entrypoint output ---\n${output.join("")}`).toBe(0)
  }, 20_000)
})
