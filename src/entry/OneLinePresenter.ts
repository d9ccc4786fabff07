/**
 * effect/cli output for the broker: `--help` and `--version` as usual, but a command line it
 * cannot parse (an unknown flag, a flag without its value) as one line on stderr instead of the
 * whole help text, like every other configuration error.
 */
import { Console, type Layer } from "effect"
import { CliOutput } from "effect/cli"
import { PROGRAM } from "./ExitCode.ts"

/** The presenter: invalid invocations become `effect-mqtt-broker: <first problem> (see --help)`. */
export const presenter: CliOutput.Presenter = {
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Console.error(`${PROGRAM}: ${(event.errors[0]?.message ?? "invalid command line").replace(/\s+/g, " ").trim()} (see --help)`)
      : CliOutput.defaultPresenter.present(event)
}

/** Provides `presenter` to `Command.run`. */
export const layer: Layer.Layer<never> = CliOutput.layerPresenter(presenter)

