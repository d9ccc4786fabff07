import { afterEach, describe, expect, it } from "@effect/vitest"
import { execFile, execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import mqtt from "mqtt"
import type { IClientOptions } from "mqtt"
import type { Packet } from "mqtt-packet"
import * as PasswordAuthenticator from "../../src/auth/PasswordAuthenticator.ts"
import { startTestBroker, type TestBroker } from "../support/TestBroker.ts"
import { RawClient } from "./harness.ts"

const brokers: Array<TestBroker> = []
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((broker) => broker.stop()))
})

/** A password file written by Debian's `mosquitto_passwd` (the test fails, saying so, without it). */
const passwordFile = (users: Record<string, string>): string => {
  const file = join(mkdtempSync(join(tmpdir(), "auth-e2e-")), "passwd")
  writeFileSync(file, "")
  for (const [user, password] of Object.entries(users)) {
    try {
      execFileSync("mosquitto_passwd", ["-b", file, user, password], { stdio: "pipe" })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new Error("mosquitto_passwd not found: install it (apt-get install -y mosquitto), .ci/run does")
      }
      throw error
    }
  }
  return file
}

/** Resolves once `condition` holds (checked every 10 ms), rejects after 3 s. */
const until = async (condition: () => boolean): Promise<void> => {
  const deadline = Date.now() + 3_000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met within 3 s")
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const start = async (allowAnonymous: boolean) => {
  const file = passwordFile({ alice: "wonderland" })
  const broker = await startTestBroker({}, PasswordAuthenticator.layer(file, { allowAnonymous }))
  brokers.push(broker)
  return broker
}

/** The CONNACK code mqtt.js gets (return code in 3.1.1, reason code in 5). */
const connackCode = (broker: TestBroker, options: IClientOptions): Promise<number> =>
  new Promise((resolve, reject) => {
    const client = mqtt.connect(broker.url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options })
    client.once("connect", (connack) => {
      client.end(true)
      resolve(connack.returnCode ?? connack.reasonCode ?? 0)
    })
    client.once("error", (error) => {
      client.end(true)
      const code = (error as { code?: unknown }).code
      if (typeof code === "number") resolve(code)
      else reject(error)
    })
  })

describe("authentication with a password file", () => {
  for (const protocolVersion of [4, 5] as const) {
    it(`MQTT ${protocolVersion === 5 ? "5" : "3.1.1"}: right password accepted, wrong one and unknown user refused as bad credentials, anonymous as not authorized`, async () => {
      const broker = await start(false)
      const bad = protocolVersion === 5 ? 0x86 : 4
      const notAuthorized = protocolVersion === 5 ? 0x87 : 5
      expect(await connackCode(broker, { protocolVersion, username: "alice", password: "wonderland" })).toBe(0)
      expect(await connackCode(broker, { protocolVersion, username: "alice", password: "wonderlan" })).toBe(bad)
      expect(await connackCode(broker, { protocolVersion, username: "alice" })).toBe(bad)
      expect(await connackCode(broker, { protocolVersion, username: "mallory", password: "wonderland" })).toBe(bad)
      expect(await connackCode(broker, { protocolVersion })).toBe(notAuthorized)
      expect(broker.logs.some((line) => line.includes("bad user name or password"))).toBe(true)
    })
  }

  it("allowAnonymous lets clients without a user name in, still checks those with one", async () => {
    const broker = await start(true)
    expect(await connackCode(broker, { protocolVersion: 4 })).toBe(0)
    expect(await connackCode(broker, { protocolVersion: 5 })).toBe(0)
    expect(await connackCode(broker, { protocolVersion: 4, username: "alice", password: "nope" })).toBe(4)
  })

  it("a refused client does not take over the session of the connected one", async () => {
    const broker = await start(false)
    const owner = mqtt.connect(broker.url, { reconnectPeriod: 0, clientId: "owned", username: "alice", password: "wonderland" })
    await new Promise<void>((resolve) => owner.once("connect", () => resolve()))
    expect(await connackCode(broker, { clientId: "owned", username: "alice", password: "guess" })).toBe(4)
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(owner.connected).toBe(true)
    owner.end(true)
  })

  it("without an authenticator everyone connects, as before", async () => {
    const broker = await startTestBroker()
    brokers.push(broker)
    expect(await connackCode(broker, { protocolVersion: 4, username: "anyone", password: "anything" })).toBe(0)
    expect(await connackCode(broker, { protocolVersion: 5 })).toBe(0)
  })

  it("Debian's mosquitto_pub -u -P connects with the right password, and is refused with a wrong one", async () => {
    const broker = await start(false)
    const pub = (password: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        execFile(
          "mosquitto_pub",
          ["-h", "127.0.0.1", "-p", String(broker.port), "-u", "alice", "-P", password, "-t", "t", "-m", "hi"],
          { timeout: 5_000 },
          (error, _stdout, stderr) => {
            if ((error as NodeJS.ErrnoException | null)?.code === "ENOENT") {
              return reject(new Error("mosquitto_pub not found: install it (apt-get install -y mosquitto-clients), .ci/run does"))
            }
            resolve({ code: error === null ? 0 : (error as { code?: number }).code ?? -1, stderr })
          }
        )
      })
    expect((await pub("wonderland")).code).toBe(0)
    const refused = await pub("wrong")
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toMatch(/not authori[sz]ed|bad user name or password/i)
  })
})

describe("password file reload", () => {
  it("on SIGHUP new CONNECTs meet the re-read users, connected clients stay; a bad file keeps the users in force", async () => {
    const file = passwordFile({ alice: "wonderland" })
    const broker = await startTestBroker({}, PasswordAuthenticator.layer(file, { allowAnonymous: false }))
    brokers.push(broker)
    const alice = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, username: "alice", password: "wonderland" })
    try {
      // bob replaces alice (written by Debian's mosquitto_passwd)
      writeFileSync(file, readFileSync(passwordFile({ bob: "builder" })))
      // the listener is called as the signal would call it; the test process is not signalled
      process.emit("SIGHUP", "SIGHUP")
      await until(() => broker.logs.some((line) => line.includes(`password file ${file} reloaded`)))
      expect(await connackCode(broker, { protocolVersion: 4, username: "bob", password: "builder" })).toBe(0)
      expect(await connackCode(broker, { protocolVersion: 4, username: "alice", password: "wonderland" })).toBe(4)
      expect(alice.connected).toBe(true)

      writeFileSync(file, "bob:not-a-hash\n")
      process.emit("SIGHUP", "SIGHUP")
      await until(() => broker.logs.some((line) => line.includes("keeping the users in force")))
      expect(broker.logs.find((line) => line.includes("keeping the users in force"))).toContain(`password file ${file}: line 1`)
      expect(await connackCode(broker, { protocolVersion: 5, username: "bob", password: "builder" })).toBe(0)
    } finally {
      await alice.endAsync(true)
    }
  })
})

describe("PasswordAuthenticator.layer", () => {
  it("refuses to start on a file with a bad line, naming it", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "auth-e2e-")), "passwd")
    writeFileSync(file, "# users\nalice:plaintext\n")
    await expect(startTestBroker({}, PasswordAuthenticator.layer(file, { allowAnonymous: false }))).rejects.toThrow(
      `password file ${file}: line 2: not a hashed password`
    )
  })

  it("refuses to start on a missing file", async () => {
    await expect(startTestBroker({}, PasswordAuthenticator.layer("/nonexistent/passwd", { allowAnonymous: false }))).rejects.toThrow(
      "password file /nonexistent/passwd: cannot be read: no such file"
    )
  })
})

describe("--max-auth-failure-rate", () => {
  it("past the failed authentications one address may make in a second, its new connections are closed unread (one warning); connected clients keep working; a token back lets it in", async () => {
    const file = passwordFile({ alice: "wonderland" })
    const broker = await startTestBroker({ maxAuthFailuresPerSecond: 3 }, PasswordAuthenticator.layer(file, { allowAnonymous: false }))
    brokers.push(broker)
    const connected = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, username: "alice", password: "wonderland" })
    await connected.subscribeAsync("still/here")
    const received = new Promise<string>((resolve) => connected.once("message", (_topic, payload) => resolve(payload.toString())))
    try {
      // three failures spend the bucket
      for (let attempt = 0; attempt < 3; attempt++) {
        expect(await connackCode(broker, { protocolVersion: 4, username: "alice", password: "guess" })).toBe(4)
      }
      // the next connections from 127.0.0.1 get no CONNACK, even with the right password
      for (let attempt = 0; attempt < 3; attempt++) {
        const raw = await RawClient.open(broker.port, 5)
        raw.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clientId: `shut-out-${attempt}`, clean: true, keepalive: 30, username: "alice", password: Buffer.from("wonderland") } as Packet)
        const answer = await Promise.race([raw.next("connack"), raw.closed.then(() => "closed")])
        raw.destroy()
        expect(answer).toBe("closed")
      }
      expect(broker.logs.filter((line) => line.startsWith("WARN") && line.includes("closing connections from 127.0.0.1 unread: over --max-auth-failure-rate 3"))).toHaveLength(1)
      connected.publish("still/here", "yes")
      expect(await received).toBe("yes")
      // one token comes back every third of a second
      await new Promise((resolve) => setTimeout(resolve, 400))
      expect(await connackCode(broker, { protocolVersion: 4, username: "alice", password: "wonderland" })).toBe(0)
    } finally {
      await connected.endAsync(true)
    }
  })
})
