/**
 * The command-line flags, generated from the `Settings` table so `--help` lists every key with
 * its env variable, allowed values and default. Flags are parsed as text (booleans as presence)
 * and decoded by `Settings.decode` like every other source: effect/cli's own integer parsing and
 * env fallback would refuse values with messages that name neither the key nor the range.
 */
import { Option } from "effect"
import { Flag } from "effect/cli"
import * as Settings from "./Settings.ts"

/** Every flag, by settings key: `Some(text)` (or `Some(true)`) when given. */
export type Flags = { readonly [K in Settings.Key]: Flag.Flag<Option.Option<string | boolean>> }

// a boolean without a default follows other keys (its description says how): "off" would be wrong
const shownDefault = (setting: Settings.Setting<unknown>): string =>
  setting.default === undefined ? (setting.kind.metavar === "" ? "unset" : "off") : typeof setting.default === "boolean" ? (setting.default ? "on" : "off") : String(setting.default)

const flagFor = (setting: Settings.Setting<unknown>): Flag.Flag<Option.Option<string | boolean>> => {
  const where = `env ${setting.env}, default ${shownDefault(setting)}`
  // a boolean flag is set by its presence; only its env variable takes a value
  return setting.kind.metavar === ""
    ? Flag.Boolean(setting.flag).pipe(Flag.optional, Flag.withDescription(`${setting.description} (${where}; env values: ${setting.kind.allowed})`))
    : Flag.String(setting.flag).pipe(
      Flag.withMetavar(setting.kind.metavar),
      Flag.optional,
      Flag.withDescription(`${setting.description} — ${setting.kind.allowed} (${where})`)
    )
}

/** The flags of the broker command, one per key of the table, in table order. */
export const flags: Flags = Object.fromEntries(
  Object.entries(Settings.settings).map(([key, setting]) => [key, flagFor(setting as Settings.Setting<unknown>)])
) as unknown as Flags

/** The parsed flags as a `Settings.Source`. */
export const source = (parsed: { readonly [K in Settings.Key]: Option.Option<string | boolean> }): Settings.Source =>
  Settings.fromFlags(
    Object.fromEntries(Object.entries(parsed).map(([key, value]) => [key, Option.getOrUndefined(value)]))
  )

/** `--config FILE`: a YAML or JSON config file, below flags and env in precedence (`ConfigFile.ts`). */
export const config: Flag.Flag<Option.Option<string>> = Flag.String("config").pipe(
  Flag.withMetavar("FILE"),
  Flag.optional,
  Flag.withDescription(
    "YAML (.yaml, .yml) or JSON (.json) config file; keys are the flags in camelCase, plus `listeners`; flags and env override it (env MQTT_CONFIG, default none)"
  )
)

/** `--print-config`: print the merged configuration as a config file and exit without starting. */
export const printConfig: Flag.Flag<boolean> = Flag.Boolean("print-config").pipe(
  Flag.withDefault(false),
  Flag.withDescription("print the configuration flags, env, config file and defaults make, in the config file's format (YAML without one), and exit")
)
