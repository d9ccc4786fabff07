/**
 * The real node entrypoint (`src/main.ts`) as a child process, for tests of what an operator
 * sees: started with flags, read until it listens, killed after each test.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"
import { fileURLToPath } from "node:url"

/** The repository root, the entrypoint's working directory. */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url))

const children: Array<ChildProcess> = []

/** Kills every entrypoint started since the last call (call it in `afterEach`). */
export const killEntrypoints = (): void => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
}

/** A free loopback port (released again before the broker binds it). */
export const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** Runs `src/main.ts` with `args` until it logs that it listens; its output so far and the process. */
export const startEntrypoint = async (args: ReadonlyArray<string>): Promise<{ readonly output: () => string; readonly process: ChildProcess }> => {
  const proc = spawn(process.execPath, ["src/main.ts", ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })
  children.push(proc)
  let output = ""
  proc.stdout.on("data", (chunk: Buffer) => output += chunk.toString())
  proc.stderr.on("data", (chunk: Buffer) => output += chunk.toString())
  const deadline = Date.now() + 15_000
  while (!output.includes("listening on")) {
    if (proc.exitCode !== null) throw new Error(`entrypoint exited ${proc.exitCode}: ${output}`)
    if (Date.now() > deadline) throw new Error(`entrypoint did not listen: ${output}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { output: () => output, process: proc }
}

/** Resolves once `condition` holds (checked every 50 ms); false after `timeoutMs`. */
export const eventually = async (condition: () => boolean, timeoutMs = 5_000): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return true
}

/** Whether a TCP connection to `port` on loopback succeeds now. */
export const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })
