import { NodeServices } from "@effect/platform-node"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Result } from "effect"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as PasswordFile from "../../src/auth/PasswordFile.ts"
import * as Passwd from "../../src/entry/Passwd.ts"
import { connackCode } from "../support/Connack.ts"

const dir = () => mkdtempSync(join(tmpdir(), "passwd-"))

const passwd = (request: Partial<Passwd.Request> & Pick<Passwd.Request, "file" | "username">) =>
  Effect.runPromiseExit(Passwd.run({ create: false, remove: false, password: undefined, ...request }).pipe(Effect.provide(NodeServices.layer)))

const failure = async (request: Parameters<typeof passwd>[0]): Promise<string> => {
  const exit = await passwd(request)
  if (Exit.isSuccess(exit)) throw new Error("passwd succeeded")
  return exit.cause.toString()
}

const verifies = async (file: string, username: string, password: string): Promise<boolean> => {
  const parsed = PasswordFile.parse(readFileSync(file, "utf8"))
  if (Result.isFailure(parsed)) throw new Error(parsed.failure.message)
  const entry = parsed.success.find((candidate) => candidate.username === username)
  return entry !== undefined && await Effect.runPromise(PasswordFile.verify(entry.hash, Buffer.from(password)))
}

/** Where the mosquitto binary is (Debian puts it in /usr/sbin, often not on a user's PATH). */
const mosquittoBinary = (): string => {
  for (const candidate of ["mosquitto", "/usr/sbin/mosquitto"]) {
    try {
      execFileSync(candidate, ["-h"], { stdio: "pipe" })
      return candidate
    } catch (error) {
      // `mosquitto -h` exits 3 after printing its usage: it is there
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") return candidate
    }
  }
  throw new Error("mosquitto not found: install it (apt-get install -y mosquitto), .ci/run does")
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const children: Array<ChildProcess> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
})

describe("passwd", () => {
  it("-c -b creates a 0600 file with a $7$ line; -b adds and replaces users; -D deletes one", async () => {
    const file = join(dir(), "users")
    expect(Exit.isSuccess(await passwd({ file, username: "alice", password: "one", create: true }))).toBe(true)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readFileSync(file, "utf8")).toMatch(/^alice:\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==\n$/)
    expect(Exit.isSuccess(await passwd({ file, username: "bob", password: "two" }))).toBe(true)
    expect(Exit.isSuccess(await passwd({ file, username: "alice", password: "three" }))).toBe(true)
    expect(await verifies(file, "alice", "three")).toBe(true)
    expect(await verifies(file, "alice", "one")).toBe(false)
    expect(await verifies(file, "bob", "two")).toBe(true)
    expect(Exit.isSuccess(await passwd({ file, username: "alice", remove: true }))).toBe(true)
    expect(readFileSync(file, "utf8")).toMatch(/^bob:/)
    expect(readFileSync(file, "utf8")).not.toMatch(/alice/)
  })

  it("refuses what mosquitto_passwd refuses, and leaves the file alone", async () => {
    const file = join(dir(), "users")
    expect(await failure({ file, username: "alice", password: "x" })).toMatch(/no such file \(-c creates one\)/)
    expect(await failure({ file, username: "a:b", password: "x", create: true })).toMatch(/cannot contain ':'/)
    expect(await failure({ file, username: "alice", password: "", create: true })).toMatch(/empty password/)
    writeFileSync(file, "alice:plaintext\n")
    expect(await failure({ file, username: "bob", password: "x" })).toMatch(/line 1: not a hashed password/)
    expect(await failure({ file, username: "alice", remove: true })).toMatch(/line 1/)
    expect(readFileSync(file, "utf8")).toBe("alice:plaintext\n")
  })

  it("its file is one Debian's mosquitto_passwd can update, and the lines it leaves still verify here", async () => {
    const file = join(dir(), "users")
    await passwd({ file, username: "alice", password: "ours", create: true })
    execFileSync("mosquitto_passwd", ["-b", file, "bob", "theirs"], { stdio: "pipe" })
    expect(await verifies(file, "alice", "ours")).toBe(true)
    expect(await verifies(file, "bob", "theirs")).toBe(true)
  })

  it("a real mosquitto broker accepts the users it writes (password_file, allow_anonymous false)", async () => {
    const binary = mosquittoBinary()
    const directory = dir()
    const file = join(directory, "users")
    await passwd({ file, username: "alice", password: "in wonderland", create: true })
    const port = await freePort()
    const conf = join(directory, "mosquitto.conf")
    // `user root`: started as root (CI containers), mosquitto would otherwise switch to its own
    // user and no longer read this 0600 file
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${file}\nuser root\n`)
    const child = spawn(binary, ["-c", conf], { stdio: "pipe" })
    children.push(child)
    let output = ""
    child.stderr.on("data", (chunk) => output += chunk)
    child.stdout.on("data", (chunk) => output += chunk)
    const deadline = Date.now() + 5_000
    while (!output.includes("running") && Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`mosquitto exited ${child.exitCode}: ${output}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(await connackCode(port, { username: "alice", password: "in wonderland" })).toBe(0)
    expect(await connackCode(port, { username: "alice", password: "in wonderlan" })).not.toBe(0)
  })
})
