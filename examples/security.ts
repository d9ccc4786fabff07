import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Authenticator, Authorizer, Broker, SessionPlugin } from "effect-mqtt-broker"
import { timingSafeEqual } from "node:crypto"

// Devices log in with their client id as user name and a shared token,
// and may only publish and subscribe under devices/<client id>/.
const token = Buffer.from(process.env["DEVICE_TOKEN"] ?? "change-me")
const isToken = (password: Uint8Array | undefined) =>
  password !== undefined && password.length === token.length && timingSafeEqual(password, token)

const DeviceLogin = Layer.succeed(
  Authenticator.Authenticator,
  Authenticator.make((request) =>
    request.username === request.clientId && isToken(request.password)
      ? Effect.succeed({ username: request.username })
      : Effect.fail(new Authenticator.AuthenticationRefused({ reason: new Authenticator.BadCredentials() }))
  )
)

const OwnSubtree = Layer.succeed(
  Authorizer.Authorizer,
  Authorizer.make(({ clientId, topic }) => Effect.succeed(topic.startsWith(`devices/${clientId}/`)))
)

const BrokerLive = Broker.layer({ port: 1883 }).pipe(
  Layer.provide(Layer.mergeAll(SessionPlugin.layer, DeviceLogin, OwnSubtree))
)

Layer.launch(BrokerLive).pipe(NodeRuntime.runMain)
