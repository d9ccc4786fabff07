import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { connackCode } from "../support/Connack.ts"

const repoRoot = fileURLToPath(new URL("../../", import.meta.url))

const children: Array<ChildProcess> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
})

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** Runs `src/main.ts` with `args` until it logs that it listens; its output so far. */
const startEntrypoint = async (args: ReadonlyArray<string>): Promise<{ readonly output: () => string; readonly process: ChildProcess }> => {
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

describe("entrypoint: authentication", () => {
  it("warns when anonymous clients can connect from other machines, not on loopback", async () => {
    const open = await startEntrypoint(["--port", String(await freePort()), "--host", "0.0.0.0"])
    expect(open.output()).toMatch(/WARN.*anonymous clients may connect from other machines \(listening on 0\.0\.0\.0\): set --password-file/)
    const loopback = await startEntrypoint(["--port", String(await freePort()), "--host", "127.0.0.1"])
    expect(loopback.output()).not.toMatch(/anonymous/)
  })

  it("npm start -- passwd writes the file that --password-file then checks; no warning with the file", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "auth-entry-")), "users")
    execFileSync(process.execPath, ["src/main.ts", "passwd", "-c", "-b", file, "alice", "pw"], { cwd: repoRoot, stdio: "pipe" })
    const port = await freePort()
    const broker = await startEntrypoint(["--port", String(port), "--host", "0.0.0.0", "--password-file", file])
    expect(broker.output()).not.toMatch(/anonymous/)
    expect(await connackCode(port, { username: "alice", password: "pw" })).toBe(0)
    expect(await connackCode(port, { username: "alice", password: "nope" })).toBe(4)
    expect(await connackCode(port, {})).toBe(5)
  })

  it("kill -HUP re-reads the password file: a user added since connects, and the broker keeps running", { timeout: 30_000 }, async () => {
    const file = join(mkdtempSync(join(tmpdir(), "auth-entry-")), "users")
    execFileSync(process.execPath, ["src/main.ts", "passwd", "-c", "-b", file, "alice", "pw"], { cwd: repoRoot, stdio: "pipe" })
    const port = await freePort()
    const broker = await startEntrypoint(["--port", String(port), "--host", "127.0.0.1", "--password-file", file])
    execFileSync(process.execPath, ["src/main.ts", "passwd", "-b", file, "bob", "pw2"], { cwd: repoRoot, stdio: "pipe" })
    expect(await connackCode(port, { username: "bob", password: "pw2" })).toBe(4)
    broker.process.kill("SIGHUP")
    const deadline = Date.now() + 5_000
    while (!broker.output().includes(`password file ${file} reloaded`) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    expect(broker.output()).toContain(`password file ${file} reloaded`)
    expect(await connackCode(port, { username: "bob", password: "pw2" })).toBe(0)
    expect(await connackCode(port, { username: "alice", password: "pw" })).toBe(0)
    expect(broker.process.exitCode).toBeNull()
  })
})
