/**
 * The node entrypoint: `npm start` (through `launch.js`, which checks the Node version first).
 * Flags override environment variables, which override a config file (`--config`), which
 * overrides the defaults; every value is checked by `config/Settings.ts` before anything starts.
 * The memory session plugin is provided by default.
 *
 * An operator gets an exit code from `entry/ExitCode.ts` and, when the broker does not run, one
 * line on stderr saying why; SIGTERM / SIGINT stop it within `entry/Shutdown.ts`'s grace period.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Console, Effect, Layer, Option } from "effect"
import { Command } from "effect/cli"
import * as Broker from "./broker/Broker.ts"
import * as Workers from "./cluster/Workers.ts"
import * as BrokerConfig from "./config/BrokerConfig.ts"
import * as ConfigFile from "./config/ConfigFile.ts"
import * as Flags from "./config/Flags.ts"
import * as Load from "./config/Load.ts"
import * as PrintConfig from "./config/PrintConfig.ts"
import * as Settings from "./config/Settings.ts"
import * as ExitCode from "./entry/ExitCode.ts"
import * as LogFormat from "./entry/LogFormat.ts"
import { tuneGarbageCollector } from "./entry/GcTuning.ts"
import { lowerHelperThreads } from "./entry/HelperThreads.ts"
import * as OneLinePresenter from "./entry/OneLinePresenter.ts"
import * as Passwd from "./entry/Passwd.ts"
import * as Shutdown from "./entry/Shutdown.ts"
import { VERSION } from "./observability/Version.ts"
import { SessionPlugin } from "./plugin/SessionPlugin.ts"

/** Warns about open access, then runs the broker until it is stopped. */
const run = (config: BrokerConfig.BrokerConfig, sources: ReadonlyArray<Settings.Source>, authentication: Load.Authentication) =>
  Effect.gen(function*() {
    const exposed = BrokerConfig.listenersOf(config).map((listener) => listener.host ?? config.host).filter((host) => !Load.isLoopback(host))
    // said once: by the supervisor of --workers, not again by each worker
    if (authentication.anonymous && exposed.length > 0 && !Workers.isWorker()) {
      yield* Effect.logWarning(
        `anonymous clients may connect from other machines (listening on ${exposed[0]}): ${
          authentication.layer === undefined ? "set --password-file" : "drop --allow-anonymous"
        } (README "Security"), or listen on --host 127.0.0.1`
      )
    }
    // --workers N: this process only supervises N copies of itself, each of which runs the broker
    const workers = yield* Load.workers(sources)
    if (workers > 1 && !Workers.isWorker()) {
      yield* Effect.logInfo(`starting ${workers} worker processes sharing the listeners' ports`)
      return yield* Workers.supervise(workers)
    }
    // --acl-file: read (and checked) when the broker Layer is built, before anything listens
    const authorization = yield* Load.authorization(sources)
    const persistence = yield* Load.persistence(sources)
    const sessionPlugin = persistence._tag === "sqlite"
      ? SessionPlugin.layerSqlite({ file: persistence.file })
      : persistence._tag === "redis"
      ? SessionPlugin.layerRedis({ url: persistence.url })
      : SessionPlugin.layer
    const broker = Broker.layer(config).pipe(Layer.provide(sessionPlugin))
    const authenticated = authentication.layer === undefined ? broker : broker.pipe(Layer.provide(authentication.layer))
    const authorized = authorization === undefined ? authenticated : authenticated.pipe(Layer.provide(authorization))
    // a worker tells its supervisor once it listens
    return yield* Layer.launch(Workers.isWorker() ? authorized.pipe(Layer.tap(() => Workers.announceReady)) : authorized)
  })

const command = Command.make(
  ExitCode.PROGRAM,
  { ...Flags.flags, config: Flags.config, printConfig: Flags.printConfig },
  ({ config: configFile, printConfig, ...flags }) =>
    Effect.gen(function*() {
      const file = yield* ConfigFile.fromCommandLine(Option.getOrUndefined(configFile), process.env)
      const sources = [Flags.source(flags), Settings.fromEnv(process.env), ...(file === undefined ? [] : [file.source])]
      const config = yield* Load.load(sources)
      const authentication = yield* Load.authentication(sources)
      if (printConfig) {
        const decoded = yield* Effect.fromResult(Settings.decode(sources))
        const document = PrintConfig.document(decoded, config, authentication.anonymous)
        return yield* Console.log(PrintConfig.render(document, file?.format ?? "yaml").trimEnd())
      }
      // from here on, log lines in the chosen format (the lines before are one-line refusals)
      const logFormat = LogFormat.resolve(yield* Load.logFormat(sources), process.stdout.isTTY === true)
      const worker = process.env[Workers.WORKER_ENV]
      return yield* run(config, sources, authentication).pipe(
        // a worker's lines say which worker wrote them
        worker === undefined || !Workers.isWorker() ? (program) => program : Effect.annotateLogs({ worker }),
        Effect.provide(LogFormat.layer(logFormat))
      )
    }).pipe(
      // the operator gets one line (ExitCode.teardown); the whole cause only when asked for.
      // An interruption is SIGTERM / SIGINT: a normal stop, nothing to explain.
      Effect.tapCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logDebug("the broker stopped with an error", cause))
    )
).pipe(
  Command.withDescription("An MQTT 5 / 3.1.1 broker on Effect 4, sessions in memory, on disk (--persistence sqlite) or in Redis (--persistence redis)"),
  Command.withSubcommands([Passwd.command])
)

tuneGarbageCollector()
lowerHelperThreads()
Shutdown.install({ program: ExitCode.PROGRAM })

command.pipe(
  Command.run({ version: VERSION }),
  Effect.provide(Layer.merge(NodeServices.layer, OneLinePresenter.layer)),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    teardown: ExitCode.teardown((line) => process.stderr.write(`${line}\n`))
  })
)
