/**
 * `--print-config`: the configuration the broker would run with, every source merged (flag >
 * env > file > default), written as a config file (`ConfigFile.ts`) that loads back to the same
 * configuration. Values that follow others are shown as the broker uses them (`BrokerConfig.make`).
 */
// the module itself: the effect/encoding barrel would load every encoding (about 0.4 s at start)
import * as Yaml from "effect/encoding/Yaml"
import type * as BrokerConfig from "./BrokerConfig.ts"
import * as ConfigFile from "./ConfigFile.ts"
import * as Settings from "./Settings.ts"

type Scalar = string | number | boolean

/** A config file's content: file keys to values, `listeners` to a list of listener fields. */
export type Document = Readonly<Record<string, Scalar | ReadonlyArray<Readonly<Record<string, Scalar>>>>>

/**
 * The merged configuration as a config file's keys, in `Settings` order. Keys left unset are
 * absent; with `listeners` the port keys it replaces are too; `allowAnonymous` is given as it
 * turned out (it follows `passwordFile` when unset).
 */
export const document = (decoded: Settings.Decoded, config: BrokerConfig.BrokerConfig, anonymous: boolean): Document => {
  const out: Record<string, Document[string]> = {}
  for (const key of Object.keys(Settings.settings) as Array<Settings.Key>) {
    if (decoded.listed !== undefined && (Settings.listenerKeys as ReadonlyArray<Settings.Key>).includes(key)) continue
    const decodedValue: unknown = key === "allowAnonymous" ? anonymous : decoded.values[key]
    // the value the broker runs with where a key of the same name was adjusted (clamped, followed)
    const used: unknown = key in config ? config[key as keyof BrokerConfig.BrokerConfig] : undefined
    const value = used !== undefined && typeof used === typeof decodedValue ? used : decodedValue
    if (value === undefined) continue
    out[ConfigFile.fileKey(Settings.settings[key])] = value as Scalar
    if (key === "host" && decoded.listed !== undefined) {
      out[ConfigFile.LISTENERS] = decoded.listed.entries.map(({ transport, port, host, key: keyFile, cert }) => ({
        transport,
        port,
        ...(host === undefined ? {} : { host }),
        ...(keyFile === undefined ? {} : { key: keyFile }),
        ...(cert === undefined ? {} : { cert })
      }))
    }
  }
  return out
}

/** A string as a plain YAML scalar when it reads back as the same string, else double-quoted. */
const yamlScalar = (value: Scalar): string => {
  if (typeof value !== "string") return String(value)
  try {
    const parsed = Yaml.parse(`v: ${value}`) as { readonly v: unknown }
    if (parsed.v === value) return value
  } catch {
    // not plain: quoted below
  }
  // a JSON string is a YAML double-quoted scalar
  return JSON.stringify(value)
}

/** The document as a config file of `format`: YAML block style or indented JSON, ending with a newline. */
export const render = (doc: Document, format: ConfigFile.Format): string => {
  if (format === "json") return `${JSON.stringify(doc, null, 2)}\n`
  const lines: Array<string> = []
  for (const [key, value] of Object.entries(doc)) {
    if (typeof value !== "object") {
      lines.push(`${key}: ${yamlScalar(value)}`)
      continue
    }
    lines.push(`${key}:`)
    for (const item of value) {
      Object.entries(item).forEach(([field, scalar], index) => lines.push(`${index === 0 ? "  - " : "    "}${field}: ${yamlScalar(scalar)}`))
    }
  }
  return `${lines.join("\n")}\n`
}
