import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Layer } from "effect"
import mqtt from "mqtt"
import * as Authenticator from "../../src/auth/Authenticator.ts"
import * as PasswordAuthenticator from "../../src/auth/PasswordAuthenticator.ts"
import * as PasswordFile from "../../src/auth/PasswordFile.ts"
import { startTestBroker } from "../support/TestBroker.ts"

const request = (username: string | undefined): Authenticator.AuthenticationRequest => ({
  clientId: "c",
  username,
  password: undefined,
  remote: "test",
  protocolVersion: 5
})

describe("Authenticator", () => {
  it.effect("allowAll accepts everyone as the user name they sent", () =>
    Effect.gen(function*() {
      expect(yield* Authenticator.allowAll.authenticate(request("alice"))).toEqual({ username: "alice" })
      expect(yield* Authenticator.allowAll.authenticate(request(undefined))).toEqual({ username: undefined })
    }))

  it("a refusal's reason decides the CONNACK codes (3.1.1 §3.2.2.3, 5 §3.2.2.2)", () => {
    expect(Authenticator.connackCodes(new Authenticator.BadCredentials())).toEqual({ v3: 4, v5: 0x86 })
    expect(Authenticator.connackCodes(new Authenticator.NotAuthorized())).toEqual({ v3: 5, v5: 0x87 })
  })

  it("a slow authenticator delays only its own client", async () => {
    const release = Effect.runSync(Deferred.make<void>())
    const seen: Array<string | undefined> = []
    const slow = Authenticator.make((req) => {
      seen.push(req.username)
      // "slow" waits until released; the other client is answered meanwhile
      const wait = req.username === "slow" ? Deferred.await(release) : Effect.void
      return Effect.as(wait, { username: req.username })
    })
    const broker = await startTestBroker({}, Layer.succeed(Authenticator.Authenticator, slow))
    try {
      const connected = (username: string) =>
        new Promise<mqtt.MqttClient>((resolve, reject) => {
          const client = mqtt.connect(broker.url, { reconnectPeriod: 0, username, password: "x" })
          client.once("connect", () => resolve(client))
          client.once("error", reject)
        })
      const slowClient = connected("slow")
      const fast = await connected("fast")
      expect(seen).toEqual(["slow", "fast"])
      fast.end(true)
      Effect.runSync(Deferred.succeed(release, undefined))
      ;(await slowClient).end(true)
    } finally {
      await broker.stop()
    }
  })
})

describe("PasswordAuthenticator", () => {
  it.effect("a verified certificate's CN needs no password (use-identity-as-username, as Mosquitto); the same name without a certificate does", () =>
    Effect.gen(function*() {
      const entry = { username: "alice", hash: yield* PasswordFile.hash(Buffer.from("secret"), { iterations: 101 }) }
      const authenticator = PasswordAuthenticator.make([entry], { allowAnonymous: false })
      expect(yield* authenticator.authenticate({ ...request("alice"), certified: true })).toEqual({ username: "alice" })
      expect(yield* authenticator.authenticate({ ...request("carol"), certified: true })).toEqual({ username: "carol" })
      const refused = yield* Effect.flip(authenticator.authenticate(request("alice")))
      expect(refused.reason._tag).toBe("BadCredentials")
      expect(yield* authenticator.authenticate({ ...request("alice"), password: Buffer.from("secret") })).toEqual({ username: "alice" })
    }))
})
