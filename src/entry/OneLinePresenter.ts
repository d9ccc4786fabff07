/**
 * effect/cli output for the broker: `--help` and `--version` as usual, but a command line it
 * cannot parse (an unknown flag, a flag without its value) as one line on stderr instead of the
 * whole help text, like every other configuration error.
 */
import { Console, type Layer } from "effect"
import { type CliError, CliOutput } from "effect/cli"
import { PROGRAM } from "./ExitCode.ts"

/** One problem with the command line, in one line. */
export const describe = (error: CliError.NonShowHelpErrors | undefined): string => {
  if (error === undefined) return "invalid command line"
  if (error._tag === "UnrecognizedOption") {
    const hint = error.suggestions.length > 0 ? ` (did you mean ${error.suggestions.join(" or ")}?)` : ""
    return `unknown flag ${error.option}${hint}`
  }
  return error.message.replace(/\s+/g, " ").trim()
}

/** The presenter: invalid invocations become `effect-mqtt-broker: <first problem>; see --help`. */
export const presenter: CliOutput.Presenter = {
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Console.error(`${PROGRAM}: ${describe(event.errors[0])}; see --help`)
      : CliOutput.defaultPresenter.present(event)
}

/** Provides `presenter` to `Command.run`. */
export const layer: Layer.Layer<never> = CliOutput.layerPresenter(presenter)
