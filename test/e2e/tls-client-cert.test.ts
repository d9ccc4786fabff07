/**
 * TLS client certificates against a real broker, with mqtt.js over mqtts: a CA, a server
 * certificate and client certificates are made with `openssl` in a temp dir when the file
 * loads (.ci/run installs it when missing). Covers `requireCertificate` (refused during the
 * handshake without a certificate, or with one from another CA), `useIdentityAsUsername` (the CN
 * is the user name the Authenticator and the ACL file see) and the TLS 1.2 floor.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import mqtt from "mqtt"
import { execFile, execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Tls from "node:tls"
import * as AclAuthorizer from "../../src/auth/AclAuthorizer.ts"
import * as Authenticator from "../../src/auth/Authenticator.ts"
import type { TlsListenerConfig } from "../../src/config/BrokerConfig.ts"
import { startTestBroker, type TestBroker } from "../support/TestBroker.ts"

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

const dir = mkdtempSync(join(tmpdir(), "tls-client-cert-"))
const openssl = (...args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" })

/** A self-signed CA: `<name>.key`, `<name>.pem`. */
const makeCa = (name: string) =>
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.pem`)

/** A key and a certificate for `subject` signed by `ca`, with optional extensions (`name.ext`). */
const makeSigned = (name: string, subject: string, ca: string, extensions?: string) => {
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", `${name}.key`, "-out", `${name}.csr`)
  const ext = extensions === undefined ? [] : (writeFileSync(join(dir, `${name}.ext`), extensions), ["-extfile", `${name}.ext`])
  openssl("x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-days", "2", "-out", `${name}.pem`, ...ext)
}

const file = (name: string) => readFileSync(join(dir, name), "utf8")

if (hasOpenssl) {
  makeCa("ca")
  makeCa("other-ca")
  makeSigned("server", "/CN=localhost", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
  makeSigned("alice", "/CN=alice", "ca")
  makeSigned("stranger", "/CN=alice", "other-ca")
  makeSigned("nameless", "/O=no common name", "ca")
}

let broker: TestBroker | undefined
const clients: Array<mqtt.MqttClient> = []
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.endAsync(true)))
  await broker?.stop()
  broker = undefined
})

const tls = (options: Partial<TlsListenerConfig> = {}): TlsListenerConfig => ({
  port: 0,
  host: "127.0.0.1",
  key: file("server.key"),
  cert: file("server.pem"),
  ca: file("ca.pem"),
  ...options
})

const tlsPort = (b: TestBroker) => b.addresses.find((a) => a.transport === "tls")!.port

/** mqtt.js options for a client presenting `name`'s certificate (none: no certificate). */
const clientOptions = (name: string | undefined): mqtt.IClientOptions => ({
  ca: file("ca.pem"),
  servername: "localhost",
  reconnectPeriod: 0,
  connectTimeout: 5000,
  ...(name === undefined ? {} : { key: file(`${name}.key`), cert: file(`${name}.pem`) })
})

const connect = async (b: TestBroker, name: string | undefined, extra: mqtt.IClientOptions = {}) => {
  const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${tlsPort(b)}`, { ...clientOptions(name), ...extra })
  clients.push(client)
  return client
}

/** How a connection attempt ends: "connected", a CONNACK refusal code, or "error: <message>" (a failed handshake). */
const attempt = (b: TestBroker, name: string | undefined, extra: mqtt.IClientOptions = {}) =>
  new Promise<string>((resolve) => {
    const client = mqtt.connect(`mqtts://127.0.0.1:${tlsPort(b)}`, { ...clientOptions(name), ...extra })
    clients.push(client)
    client.on("connect", () => resolve("connected"))
    client.on("error", (error) => {
      const code = (error as { code?: unknown }).code
      resolve(typeof code === "number" ? `connack ${code}` : `error: ${error.message}`)
    })
    client.on("close", () => resolve("closed"))
  })

/** An Authenticator that accepts everyone and records the user names and passwords it is asked about. */
const recording = () => {
  const seen: Array<{ username: string | undefined; password: string | undefined }> = []
  const layer = Layer.succeed(
    Authenticator.Authenticator,
    Authenticator.make((request) => {
      seen.push({ username: request.username, password: request.password && Buffer.from(request.password).toString() })
      return Effect.succeed({ username: request.username })
    })
  )
  return { seen, layer }
}

describe.skipIf(!hasOpenssl)("TLS client certificates", () => {
  it("a client whose certificate the CA signed connects (CONNACK 0)", async () => {
    broker = await startTestBroker({ tls: tls({ requireCertificate: true }) })
    const client = await connect(broker, "alice")
    expect(client.connected).toBe(true)
    // what the refusal tests look for in vain
    expect(broker.logs.some((line) => line.includes("client connected"))).toBe(true)
  })

  it("with requireCertificate, a client without a certificate is refused during the handshake", async () => {
    broker = await startTestBroker({ tls: tls({ requireCertificate: true }) })
    const outcome = await attempt(broker, undefined)
    // TLS 1.3 lets the client finish its side first, so it may see the server's alert or just the close
    expect(outcome).toMatch(/^(error: .*alert|closed)/)
    expect(broker.logs.some((line) => line.includes("client connected"))).toBe(false)
  })

  it("with requireCertificate, a certificate from another CA is refused during the handshake", async () => {
    broker = await startTestBroker({ tls: tls({ requireCertificate: true }) })
    const outcome = await attempt(broker, "stranger")
    // TLS 1.3 lets the client finish its side first, so it may see the server's alert or just the close
    expect(outcome).toMatch(/^(error: .*alert|closed)/)
    expect(broker.logs.some((line) => line.includes("client connected"))).toBe(false)
  })

  it("without requireCertificate, a client without a certificate connects as before", async () => {
    broker = await startTestBroker({ tls: tls() })
    const client = await connect(broker, undefined)
    expect(client.connected).toBe(true)
  })

  it("with useIdentityAsUsername, the Authenticator sees the CN as the user name and no password", async () => {
    const { layer, seen } = recording()
    broker = await startTestBroker({ tls: tls({ requireCertificate: true, useIdentityAsUsername: true }) }, layer)
    await connect(broker, "alice", { username: "mallory", password: "secret" })
    expect(seen).toEqual([{ username: "alice", password: undefined }])
  })

  it("with useIdentityAsUsername, the ACL file's `user <CN>` rules apply to the certificate's client", async () => {
    const acl = join(dir, "acl")
    writeFileSync(acl, ["user alice", "topic readwrite alice/#", ""].join("\n"))
    broker = await startTestBroker(
      { tls: tls({ requireCertificate: true, useIdentityAsUsername: true }) },
      AclAuthorizer.layer(acl)
    )
    // the CONNECT's user name is ignored: claiming another one changes nothing
    const client = await connect(broker, "alice", { username: "nobody" })
    const granted = await client.subscribeAsync("alice/in", { qos: 1 })
    expect(granted.map((g) => g.qos)).toEqual([1])
    // and alice's rules only: the control that the grant above came from the `user alice` block
    await expect(client.subscribeAsync("bob/in", { qos: 1 })).rejects.toThrow(/error|authorized/i)
    const received = new Promise<string>((resolve) => client.on("message", (_t, payload) => resolve(payload.toString())))
    await client.publishAsync("alice/in", "mine", { qos: 1 })
    expect(await received).toBe("mine")
  })

  it("with useIdentityAsUsername, a certificate without a CN is refused with CONNACK 5 (3.1.1) / 0x87 (MQTT 5)", async () => {
    broker = await startTestBroker({ tls: tls({ requireCertificate: true, useIdentityAsUsername: true }) })
    expect(await attempt(broker, "nameless")).toBe("connack 5")
    expect(await attempt(broker, "nameless", { protocolVersion: 5 })).toBe("connack 135")
  })

  it("a TLS 1.1 client is refused (TLS 1.2 is the floor)", async () => {
    broker = await startTestBroker({ tls: tls() })
    const port = tlsPort(broker)
    const outcome = await new Promise<string>((resolve) => {
      const socket = Tls.connect({ host: "127.0.0.1", port, ca: file("ca.pem"), servername: "localhost", minVersion: "TLSv1", maxVersion: "TLSv1.1",
        // OpenSSL 3 only offers TLS 1.1 at security level 0: without it the client refuses by itself
        ciphers: "DEFAULT:@SECLEVEL=0" })
      socket.on("secureConnect", () => {
        socket.destroy()
        resolve("connected")
      })
      socket.on("error", (error) => resolve(`error: ${error.message}`))
    })
    // the server's alert, not the client giving up on its own
    expect(outcome).toMatch(/alert protocol version/)
  })
})

describe.skipIf(!hasOpenssl)("TLS client certificates: Debian's mosquitto_pub", () => {
  /** mosquitto_pub over TLS with `args` added; how it exited and what it said. */
  const pub = (port: number, args: Array<string>) =>
    new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      execFile(
        "mosquitto_pub",
        ["-h", "127.0.0.1", "-p", String(port), "--cafile", join(dir, "ca.pem"), "-u", "mallory", "-t", "alice/t", "-m", "hi", ...args],
        { timeout: 5_000 },
        (error, _stdout, stderr) => {
          if ((error as NodeJS.ErrnoException | null)?.code === "ENOENT") {
            return reject(new Error("mosquitto_pub not found: install it (apt-get install -y mosquitto-clients), .ci/run does"))
          }
          resolve({ code: error === null ? 0 : (error as { code?: number }).code ?? -1, stderr })
        }
      )
    })

  it("--cert/--key from the CA connect as the certificate's CN; without them the handshake refuses it", async () => {
    const { layer, seen } = recording()
    broker = await startTestBroker({ tls: tls({ requireCertificate: true, useIdentityAsUsername: true }) }, layer)
    const port = tlsPort(broker)
    const accepted = await pub(port, ["--cert", join(dir, "alice.pem"), "--key", join(dir, "alice.key")])
    expect(accepted).toEqual({ code: 0, stderr: "" })
    expect(seen).toEqual([{ username: "alice", password: undefined }])
    expect((await pub(port, [])).code).not.toBe(0)
    expect((await pub(port, ["--cert", join(dir, "stranger.pem"), "--key", join(dir, "stranger.key")])).code).not.toBe(0)
    // neither got as far as CONNECT
    expect(seen).toHaveLength(1)
  })
})

describe.runIf(!hasOpenssl)("TLS client certificates (openssl missing)", () => {
  it("needs openssl to make certificates: install it (.ci/run does)", () => {
    expect.fail("openssl is not installed: the TLS client certificate tests cannot make their certificates")
  })
})
