import { describe, expect, it } from "@effect/vitest"
import { generateKeyPairSync } from "node:crypto"
import { readFileSync } from "node:fs"
import { caProblem, tlsMaterialProblem } from "../../src/transport/TlsListener.ts"
import { startTestBroker } from "../support/TestBroker.ts"

const key = readFileSync(new URL("../fixtures/tls-key.pem", import.meta.url), "utf8")
const cert = readFileSync(new URL("../fixtures/tls-cert.pem", import.meta.url), "utf8")
const otherKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString()

describe("TLS material", () => {
  it("a matching key and certificate are accepted", () => {
    expect(tlsMaterialProblem(key, cert)).toBeUndefined()
  })

  it("a key that does not match its certificate, swapped files, or a file that is not PEM are each named", () => {
    expect(tlsMaterialProblem(otherKey, cert)).toBe("the key does not match the certificate")
    expect(tlsMaterialProblem(cert, key)).toBe("the key is not a PEM private key")
    expect(tlsMaterialProblem("not a pem file", cert)).toBe("the key is not a PEM private key")
    expect(tlsMaterialProblem(key, key)).toBe("the certificate is not a PEM certificate")
  })

  it("a CA bundle must be a PEM certificate", () => {
    expect(caProblem(cert)).toBeUndefined()
    expect(caProblem(key)).toBe("the CA file is not a PEM certificate")
  })

  it("a broker given a CA that is not PEM fails to start, naming it", async () => {
    await expect(startTestBroker({ tls: { port: 0, host: "127.0.0.1", key, cert, ca: "not a pem file", requireCertificate: true } })).rejects.toThrow(
      "cannot listen on tls://127.0.0.1:0: TLS: the CA file is not a PEM certificate"
    )
  })

  it("a broker given a mismatched key fails to start, promptly, instead of hanging", async () => {
    const started = startTestBroker({ tls: { port: 0, host: "127.0.0.1", key: otherKey, cert } })
    const outcome = await Promise.race([
      started.then(async (broker) => {
        await broker.stop()
        return "started"
      }, (error: Error) => `failed: ${error.name === "ListenerError" ? error.message : `not a ListenerError: ${String(error)}`}`),
      new Promise<string>((resolve) => setTimeout(() => resolve("hung"), 5_000))
    ])
    expect(outcome).toMatch(/^failed: cannot listen on tls:\/\/127\.0\.0\.1:0: TLS: the key does not match the certificate$/)
  })
})
