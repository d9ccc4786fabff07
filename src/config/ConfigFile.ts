/**
 * The config file (`--config FILE`, YAML or JSON by its extension): one more `Settings.Source`,
 * after flags and env, whose values decode through the same per-key schemas, plus the file-only
 * `listeners` list. A file key is the flag in camelCase (`--max-packet-size` is `maxPacketSize`,
 * `--max-connect-rate` is `maxConnectRate`); any other key, a wrong type, or a file that cannot
 * be read or parsed is a `ConfigError` naming the key and the file, before anything starts.
 */
import { Effect, Predicate, Result, Schema } from "effect"
// the module itself: the effect/encoding barrel would load every encoding (about 0.4 s at start)
import * as Yaml from "effect/encoding/Yaml"
import { readFileSync } from "node:fs"
import { ConfigError } from "./ConfigError.ts"
import { describeFileProblem } from "./FileProblem.ts"
import * as Settings from "./Settings.ts"

/** How a config file is written, from its extension. */
export type Format = "yaml" | "json"

/** A parsed config file: its values as a source, which carries its listeners if it lists them. */
export interface ConfigFile {
  /** The path as the operator gave it (errors name it so). */
  readonly path: string
  readonly format: Format
  readonly source: Settings.Source
}

/** The file key of a setting: its flag in camelCase (`max-packet-size` → `maxPacketSize`). */
export const fileKey = (setting: Settings.Setting<unknown>): string =>
  setting.flag.replace(/-([a-z0-9])/g, (_, letter: string) => letter.toUpperCase())

/** The key that lists listeners one by one (file only: it has no flag). */
export const LISTENERS = "listeners"

/** Every file key, to the settings key it sets. */
const keys: ReadonlyMap<string, Settings.Key> = new Map(
  (Object.keys(Settings.settings) as Array<Settings.Key>).map((key) => [fileKey(Settings.settings[key]), key])
)

/** The format a file name says, if it says one. */
export const formatOf = (path: string): Format | undefined =>
  /\.ya?ml$/i.test(path) ? "yaml" : /\.json$/i.test(path) ? "json" : undefined

const quoted = (text: string): string => (text === "" || /\s|"/.test(text) ? JSON.stringify(text) : text)
const display = (raw: unknown): string => (Predicate.isString(raw) ? quoted(raw) : JSON.stringify(raw))

/** A value found at `path` (`maxPacketSize`, `listeners[1].port`) in `file`, named as errors show it. */
const found = (path: string, file: string, raw: unknown): Settings.Given => ({
  raw,
  origin: `${path} in ${file}`,
  shown: `${path}: ${display(raw)} in ${file}`
})

const normalized = (key: string): string => key.toLowerCase().replace(/[^a-z0-9]/g, "")

/** Edits (insert, delete, replace a character) from `a` to `b`. */
const distance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (const [i, charA] of [...a].entries()) {
    const current = [i + 1]
    for (const [j, charB] of [...b].entries()) current.push(Math.min(previous[j + 1]! + 1, current[j]! + 1, previous[j]! + (charA === charB ? 0 : 1)))
    previous = current
  }
  return previous[b.length]!
}

/** The file key meant by a misspelled one: another case, dashes, the settings key's own name, or a typo or two. */
const suggestion = (key: string): string | undefined => {
  for (const [name, settingsKey] of keys) {
    if (normalized(name) === normalized(key) || normalized(settingsKey) === normalized(key)) return name
  }
  const candidates = [...keys.keys(), LISTENERS].filter((name) => distance(normalized(name), normalized(key)) <= 2)
  return candidates.length === 1 ? candidates[0] : undefined
}

const isMapping = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const fail = (keys: ReadonlyArray<string>, message: string) => Result.fail(new ConfigError({ keys: [...keys], message }))

const LISTENER_FIELDS = ["transport", "port", "host", "key", "cert"] as const
const TRANSPORTS = ["tcp", "tls", "ws"] as const

/** One field of a listener, decoded through the schema of the key it stands for. */
const field = <A>(setting: Settings.Setting<A>, path: string, file: string, raw: unknown): Result.Result<A, ConfigError> => {
  const decoded = Schema.decodeUnknownResult(setting.kind.schema)(raw)
  return Result.isSuccess(decoded)
    ? Result.succeed(decoded.success)
    : fail([LISTENERS], `${found(path, file, raw).shown} is not ${setting.kind.allowed}`)
}

const listener = (raw: unknown, index: number, file: string): Result.Result<Settings.ListedListener, ConfigError> => {
  const at = `${LISTENERS}[${index}]`
  const origin = `${at} in ${file}`
  if (!isMapping(raw)) return fail([LISTENERS], `${found(at, file, raw).shown} is not a listener (transport, port, host, key, cert)`)
  const unknown = Object.keys(raw).find((name) => !(LISTENER_FIELDS as ReadonlyArray<string>).includes(name))
  if (unknown !== undefined) return fail([LISTENERS], `${at}.${unknown} in ${file} is not a listener field (${LISTENER_FIELDS.join(", ")})`)
  const transport = raw.transport
  if (!(TRANSPORTS as ReadonlyArray<unknown>).includes(transport)) {
    return fail([LISTENERS], `${found(`${at}.transport`, file, transport ?? null).shown} is not a transport (${TRANSPORTS.join(", ")})`)
  }
  if (raw.port === undefined || raw.port === null) return fail([LISTENERS], `${origin} has no port`)
  const port = field(Settings.settings.port, `${at}.port`, file, raw.port)
  if (Result.isFailure(port)) return Result.fail(port.failure)
  const entry: { -readonly [K in keyof Settings.ListedListener]: Settings.ListedListener[K] } = {
    transport: transport as Settings.ListedListener["transport"],
    port: port.success,
    origin
  }
  for (const [name, setting] of [["host", Settings.settings.host], ["key", Settings.settings.tlsKey], ["cert", Settings.settings.tlsCert]] as const) {
    if (raw[name] === undefined || raw[name] === null) continue
    const value = field(setting, `${at}.${name}`, file, raw[name])
    if (Result.isFailure(value)) return Result.fail(value.failure)
    entry[name] = value.success
  }
  if (transport === "tls" && (entry.key === undefined || entry.cert === undefined)) {
    return fail([LISTENERS], `${origin} is a tls listener without ${entry.key === undefined ? "key" : "cert"}: name its PEM key and cert files`)
  }
  if (transport !== "tls" && (entry.key !== undefined || entry.cert !== undefined)) {
    return fail([LISTENERS], `${at}.${entry.key !== undefined ? "key" : "cert"} in ${file} is for tls listeners only`)
  }
  if (entry.key !== undefined && entry.cert !== undefined) {
    entry.files = { key: found(`${at}.key`, file, entry.key), cert: found(`${at}.cert`, file, entry.cert) }
  }
  return Result.succeed(entry)
}

const listeners = (raw: unknown, file: string): Result.Result<Settings.Listed, ConfigError> => {
  const origin = `${LISTENERS} in ${file}`
  if (!Array.isArray(raw)) return fail([LISTENERS], `${found(LISTENERS, file, raw).shown} is not a list of listeners`)
  if (raw.length === 0) return fail([LISTENERS], `${origin} is empty: list at least one listener`)
  const entries: Array<Settings.ListedListener> = []
  for (const [index, item] of raw.entries()) {
    const entry = listener(item, index, file)
    if (Result.isFailure(entry)) return Result.fail(entry.failure)
    entries.push(entry.success)
  }
  return Result.succeed({ origin, entries })
}

/**
 * A config file's text as a `ConfigFile`; `shown` names the file in errors about the whole file
 * (`--config broker.yaml`), `path` in errors about one key. A `null` value (`tlsPort:` left
 * empty) counts as unset, as an empty environment variable does.
 */
export const parse = (path: string, text: string, shown: string = path): Result.Result<ConfigFile, ConfigError> => {
  const format = formatOf(path)
  if (format === undefined) return fail(["config"], `${shown} is neither YAML nor JSON: name it .yaml, .yml or .json`)
  let document: unknown
  try {
    document = format === "json" ? JSON.parse(text) : Yaml.parse(text)
  } catch (cause) {
    return fail(["config"], `${shown} is not valid ${format === "json" ? "JSON" : "YAML"}: ${Predicate.isError(cause) ? cause.message : String(cause)}`)
  }
  // an empty YAML file (or one with only comments) sets nothing
  const values = document ?? {}
  if (!isMapping(values)) return fail(["config"], `${shown} is not a mapping of keys to values`)
  for (const key of Object.keys(values)) {
    if (key === LISTENERS || keys.has(key)) continue
    const meant = suggestion(key)
    return fail([key], `${key} in ${path} is not a configuration key${meant === undefined ? " (see --help; file keys are the flags in camelCase)" : ` (did you mean ${meant}?)`}`)
  }
  // every value is checked, also one a flag or env overrides today: the file stays valid when they go
  for (const [name, key] of keys) {
    const raw = values[name]
    if (raw === undefined || raw === null) continue
    const setting = Settings.settings[key] as Settings.Setting<unknown>
    if (Result.isFailure(Schema.decodeUnknownResult(setting.kind.schema)(raw))) {
      return fail([key], `${found(name, path, raw).shown} is not ${setting.kind.allowed}`)
    }
  }
  let listed: Settings.Listed | undefined
  if (values[LISTENERS] !== undefined && values[LISTENERS] !== null) {
    const decoded = listeners(values[LISTENERS], path)
    if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
    listed = decoded.success
  }
  const lookup: Settings.Source = (_key, setting) => {
    const name = fileKey(setting as Settings.Setting<unknown>)
    const raw = values[name]
    return raw === undefined || raw === null ? undefined : found(name, path, raw)
  }
  return Result.succeed({ path, format, source: Object.assign(lookup, { listed }) })
}

/** Reads and parses the file at `path`; `shown` names it in errors (`--config broker.yaml`). */
export const read = (path: string, shown: string): Effect.Effect<ConfigFile, ConfigError> =>
  Effect.try({
    try: () => readFileSync(path, "utf8"),
    catch: (cause) => new ConfigError({ keys: ["config"], message: `${shown} cannot be read: ${describeFileProblem(cause)}` })
  }).pipe(Effect.flatMap((text) => Effect.fromResult(parse(path, text, shown))))

/** The env variable naming the config file when `--config` does not. */
export const ENV = "MQTT_CONFIG"

/** The config file `--config` (else `MQTT_CONFIG`) names, read and parsed; none when neither does. */
export const fromCommandLine = (
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<ConfigFile | undefined, ConfigError> => {
  if (flag !== undefined) return read(flag, `--config ${quoted(flag)}`)
  const fromEnv = env[ENV]
  return fromEnv === undefined || fromEnv === "" ? Effect.succeed(undefined) : read(fromEnv, `${ENV}=${quoted(fromEnv)}`)
}
