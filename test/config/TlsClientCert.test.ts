/**
 * The client certificate keys (`--tls-ca`, `--require-certificate`, `--use-identity-as-username`):
 * how they reach the TLS listener's config, and the one-line refusals for a CA file that cannot
 * be used and for a key given without the one it needs.
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { loadConfig } from "../support/LoadConfig.ts"

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
const keyFile = fixture("tls-key.pem")
const certFile = fixture("tls-cert.pem")
// any PEM certificate will do as a CA bundle here: the handshake itself is tested in test/e2e
const caFile = certFile
const listener = { tlsPort: "0", tlsKey: keyFile, tlsCert: certFile }

const load = loadConfig

describe("client certificate settings", () => {
  it("reach the TLS listener: the CA's text, and both switches", () => {
    const config = load({ ...listener, tlsCa: caFile, requireCertificate: true, useIdentityAsUsername: true })
    expect(config).toMatchObject({
      tls: { ca: readFileSync(caFile, "utf8"), requireCertificate: true, useIdentityAsUsername: true }
    })
  })

  it("can be given as env variables", () => {
    const config = load(listener, { MQTT_TLS_CA: caFile, MQTT_REQUIRE_CERTIFICATE: "yes", MQTT_USE_IDENTITY_AS_USERNAME: "1" })
    expect(config).toMatchObject({ tls: { requireCertificate: true, useIdentityAsUsername: true } })
  })

  it("are off by default: no CA, no certificate asked for", () => {
    const config = load(listener)
    const tls = typeof config === "object" ? config.tls : undefined
    expect(tls).toBeDefined()
    expect([tls?.ca, tls?.requireCertificate, tls?.useIdentityAsUsername]).toEqual([undefined, undefined, undefined])
  })

  it("a CA file that is missing or not PEM is refused in one line", () => {
    expect(load({ ...listener, tlsCa: "/nonexistent/ca.pem" })).toBe("--tls-ca /nonexistent/ca.pem cannot be read: no such file")
    const notPem = join(mkdtempSync(join(tmpdir(), "tls-ca-")), "ca.pem")
    writeFileSync(notPem, "not a certificate\n")
    expect(load(listener, { MQTT_TLS_CA: notPem })).toBe(
      `MQTT_TLS_CA=${notPem} cannot verify client certificates: the CA file is not a PEM certificate`
    )
    expect(load({ ...listener, tlsCa: keyFile })).toBe(
      `--tls-ca ${keyFile} cannot verify client certificates: the CA file is not a PEM certificate`
    )
  })

  it("each needs what it builds on", () => {
    expect(load({ ...listener, requireCertificate: true })).toBe(
      "--require-certificate needs --tls-ca (MQTT_TLS_CA): client certificates must chain to a CA"
    )
    expect(load({ ...listener, tlsCa: caFile, useIdentityAsUsername: true })).toBe(
      "--use-identity-as-username needs --require-certificate (MQTT_REQUIRE_CERTIFICATE): only a required certificate names the client"
    )
    expect(load({ tlsCa: caFile })).toBe(
      "--tls-ca is set but --tls-port (MQTT_TLS_PORT) is not: client certificates are checked by the TLS listener"
    )
  })

  it("switched off explicitly, they need nothing", () => {
    const config = load({ ...listener }, { MQTT_REQUIRE_CERTIFICATE: "false", MQTT_USE_IDENTITY_AS_USERNAME: "no" })
    expect(typeof config === "object" && config.tls?.requireCertificate).toBeFalsy()
  })
})
