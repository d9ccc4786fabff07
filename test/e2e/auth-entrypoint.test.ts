import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { connackCode } from "../support/Connack.ts"
import { eventually, freePort, killEntrypoints, repoRoot, startEntrypoint } from "../support/Entrypoint.ts"

afterEach(killEntrypoints)

describe("entrypoint: authentication", () => {
  it("warns when anonymous clients can connect from other machines, not on loopback", async () => {
    const open = await startEntrypoint(["--port", String(await freePort()), "--host", "0.0.0.0"])
    const warning = open.output().split("\n").find((line) => line.includes("anonymous clients may connect"))
    // not a terminal: JSON lines (--log-format auto)
    expect(JSON.parse(warning ?? "{}")).toMatchObject({
      level: "WARN",
      message: "anonymous clients may connect from other machines (listening on 0.0.0.0): set --password-file (README \"Security\"), or listen on --host 127.0.0.1"
    })
    const loopback = await startEntrypoint(["--port", String(await freePort()), "--host", "127.0.0.1"])
    expect(loopback.output()).not.toMatch(/anonymous/)
  })

  // two Node starts from the sources (passwd, then the broker): seconds each on a loaded machine
  it("npm start -- passwd writes the file that --password-file then checks; no warning with the file", { timeout: 30_000 }, async () => {
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
    expect(await eventually(() => broker.output().includes(`password file ${file} reloaded`))).toBe(true)
    expect(await connackCode(port, { username: "bob", password: "pw2" })).toBe(0)
    expect(await connackCode(port, { username: "alice", password: "pw" })).toBe(0)
    expect(broker.process.exitCode).toBeNull()
  })
})

describe("entrypoint: --log-format", () => {
  it("not on a terminal (auto): JSON lines; connection events carry client id, address, protocol version and reason code", { timeout: 30_000 }, async () => {
    const port = await freePort()
    const broker = await startEntrypoint(["--port", String(port), "--host", "127.0.0.1"])
    expect(await connackCode(port, { clientId: "logged-1", protocolVersion: 5 })).toBe(0)
    // the probe leaves without DISCONNECT
    expect(await eventually(() => broker.output().includes("connection lost"))).toBe(true)
    const lines = broker.output().trim().split("\n").map((line) => JSON.parse(line) as { message: string; level: string; annotations: Record<string, unknown> })
    expect(lines.find((line) => line.message === "client connected")).toMatchObject({
      level: "INFO",
      annotations: { clientId: "logged-1", protocolVersion: 5, reasonCode: 0, remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/) }
    })
    expect(lines.find((line) => line.message === "connection lost")?.annotations).toMatchObject({ clientId: "logged-1", protocolVersion: 5, reasonCode: 0 })
  })

  it("--log-format logfmt: key=value lines; an unknown format is refused naming the flag (exit 2)", { timeout: 30_000 }, async () => {
    const port = await freePort()
    const broker = await startEntrypoint(["--port", String(port), "--host", "127.0.0.1", "--log-format", "logfmt"])
    expect(await connackCode(port, { clientId: "logged-2", protocolVersion: 4 })).toBe(0)
    expect(await eventually(() => broker.output().includes("clientId=logged-2"))).toBe(true)
    expect(broker.output()).toMatch(/level=INFO .*message="client connected" .*clientId=logged-2 .*protocolVersion=4/)
    const refused = spawnSync(process.execPath, ["src/main.ts", "--log-format", "xml"], { cwd: repoRoot, encoding: "utf8" })
    expect(refused.status).toBe(2)
    expect(refused.stderr.trim()).toBe("effect-mqtt-broker: --log-format xml is not one of auto, logfmt, json, pretty")
  })
})
