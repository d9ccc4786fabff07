/**
 * The node entrypoint: `npm start` (through `launch.js`, which checks the Node version first).
 * Flags override environment variables, which override the defaults; every value is checked by
 * `config/Settings.ts` before anything starts. The memory session plugin is provided by default.
 *
 * An operator gets an exit code from `entry/ExitCode.ts` and, when the broker does not run, one
 * line on stderr saying why; SIGTERM / SIGINT stop it within `entry/Shutdown.ts`'s grace period.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Effect, Layer } from "effect"
import { Command } from "effect/cli"
import * as Broker from "./broker/Broker.ts"
import * as Flags from "./config/Flags.ts"
import * as Load from "./config/Load.ts"
import * as Settings from "./config/Settings.ts"
import * as ExitCode from "./entry/ExitCode.ts"
import { tuneGarbageCollector } from "./entry/GcTuning.ts"
import * as OneLinePresenter from "./entry/OneLinePresenter.ts"
import * as Passwd from "./entry/Passwd.ts"
import * as Shutdown from "./entry/Shutdown.ts"
import { SessionPlugin } from "./plugin/SessionPlugin.ts"

const command = Command.make(
  ExitCode.PROGRAM,
  Flags.flags,
  (flags) =>
    Effect.gen(function*() {
      const sources = [Flags.source(flags), Settings.fromEnv(process.env)]
      const config = yield* Load.load(sources)
      const authentication = yield* Load.authentication(sources)
      if (authentication.anonymous && !Load.isLoopback(config.host)) {
        yield* Effect.logWarning(
          `anonymous clients may connect from other machines (listening on ${config.host}): ${
            authentication.layer === undefined ? "set --password-file" : "drop --allow-anonymous"
          } (README "Security"), or listen on --host 127.0.0.1`
        )
      }
      // --acl-file: read (and checked) when the broker Layer is built, before anything listens
      const authorization = yield* Load.authorization(sources)
      const persistence = yield* Load.persistence(sources)
      const sessionPlugin = persistence._tag === "sqlite" ? SessionPlugin.layerSqlite({ file: persistence.file }) : SessionPlugin.layer
      const broker = Broker.layer(config).pipe(Layer.provide(sessionPlugin))
      const authenticated = authentication.layer === undefined ? broker : broker.pipe(Layer.provide(authentication.layer))
      return yield* Layer.launch(authorization === undefined ? authenticated : authenticated.pipe(Layer.provide(authorization)))
    }).pipe(
      // the operator gets one line (ExitCode.teardown); the whole cause only when asked for.
      // An interruption is SIGTERM / SIGINT: a normal stop, nothing to explain.
      Effect.tapCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logDebug("the broker stopped with an error", cause))
    )
).pipe(
  Command.withDescription("An MQTT 5 / 3.1.1 broker on Effect 4, sessions in memory or on disk (--persistence sqlite)"),
  Command.withSubcommands([Passwd.command])
)

tuneGarbageCollector()
Shutdown.install({ program: ExitCode.PROGRAM })

command.pipe(
  Command.run({ version: "0.1.0" }),
  Effect.provide(Layer.merge(NodeServices.layer, OneLinePresenter.layer)),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    teardown: ExitCode.teardown((line) => process.stderr.write(`${line}\n`))
  })
)
