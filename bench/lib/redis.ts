/**
 * A real `redis-server` on a free loopback port, with no persistence (`--save ''`,
 * `--appendonly no`): started by `start`, stopped by the returned `stop`. When redis-server cannot
 * be found or does not answer, `start` rejects with a message saying how to install it. Shared by
 * the tests (`test/support/RedisServer.ts`, which fail rather than skip; `.ci/run` installs it) and
 * the bench's `scale-out` scenario, hence no test framework here.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { tmpdir } from "node:os"
import { delimiter, join } from "node:path"

/** A running redis-server. */
export interface RedisServer {
  /** Its process id (for CPU readings). */
  readonly pid: number
  /** Its port on 127.0.0.1. */
  readonly port: number
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string
  /** Stops the server (SIGTERM, then SIGKILL after 2 s) and removes its working directory. */
  readonly stop: () => Promise<void>
}

/** How to get redis-server, in the message of every failure to start it. */
export const INSTALL_HINT = "install it with `apt-get install -y redis-server` (.ci/run does)"

const executable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** The redis-server binary: on PATH, else Debian's `/usr/bin/redis-server`. */
export const findRedisServer = (): string | undefined => {
  const dirs = (process.env["PATH"] ?? "").split(delimiter).filter((dir) => dir !== "")
  for (const dir of [...dirs, "/usr/bin", "/usr/sbin"]) {
    const candidate = join(dir, "redis-server")
    if (executable(candidate)) return candidate
  }
  return undefined
}

/** A port that was free a moment ago (the OS picks it; redis-server binds it right after). */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** Whether the server on `port` answers PING with PONG. */
const pong = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    let reply = ""
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once("error", () => done(false))
    socket.once("connect", () => socket.write("PING\r\n"))
    socket.on("data", (chunk) => {
      reply += chunk.toString("latin1")
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"))
    })
  })

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()))

/** One attempt on one port; rejects with the server's output when it does not answer within 5 s. */
const startOn = async (binary: string, port: number, onSpawn: (child: ChildProcess) => void): Promise<RedisServer> => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-redis-test-"))
  const child = spawn(
    binary,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"],
    { stdio: ["ignore", "pipe", "pipe"] }
  )
  onSpawn(child)
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  let spawnError: Error | undefined
  child.once("error", (error) => (spawnError = error))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM")
      const timer = setTimeout(() => child.kill("SIGKILL"), 2000)
      await exited(child)
      clearTimeout(timer)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    if (spawnError !== undefined || child.exitCode !== null || child.signalCode !== null) break
    if (await pong(port)) return { pid: child.pid ?? -1, port, url: `redis://127.0.0.1:${port}`, stop }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  await stop()
  const why = spawnError?.message ?? output.trim().split("\n").slice(-3).join(" | ")
  throw new Error(`redis-server (${binary}) did not answer PING on port ${port}: ${why || "no output"}`)
}

/**
 * Starts a redis-server on a free port; rejects (never skips) when it cannot, saying how to
 * install it. Tries three ports in case another process takes the free one first. `onSpawn` sees
 * every redis-server process as it is spawned (the bench registers it to be killed on its exit);
 * `binary` replaces the search for one (the bench's `REDIS_SERVER_BIN`).
 */
export const start = async (
  options: { readonly onSpawn?: (child: ChildProcess) => void; readonly binary?: string | undefined } = {}
): Promise<RedisServer> => {
  const binary = options.binary ?? findRedisServer()
  if (binary === undefined) throw new Error(`redis-server not found on PATH nor in /usr/bin: ${INSTALL_HINT}`)
  if (!executable(binary)) throw new Error(`redis-server ${binary} is not an executable file: ${INSTALL_HINT}`)
  let last: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOn(binary, await freePort(), options.onSpawn ?? (() => {}))
    } catch (error) {
      last = error
    }
  }
  throw new Error(`${last instanceof Error ? last.message : String(last)}; ${INSTALL_HINT}`)
}
