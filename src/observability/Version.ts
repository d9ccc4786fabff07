/**
 * The broker's name and version: what `--version` prints and `$SYS/broker/version` reports. The
 * version is read from the package root's package.json (two folders up, from
 * `src/observability/` as from the built `dist/observability/`), so a release cannot forget it.
 */
import { readFileSync } from "node:fs"

/** The product name. */
export const NAME = "effect-mqtt-broker"

/** package.json's `version`; "unknown" if it cannot be read, which must not stop a broker. */
const packageVersion = (): string => {
  try {
    const manifest: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"))
    const version = typeof manifest === "object" && manifest !== null && "version" in manifest ? manifest.version : undefined
    return typeof version === "string" ? version : "unknown"
  } catch {
    return "unknown"
  }
}

/** The version, as in package.json. */
export const VERSION = packageVersion()

/** `$SYS/broker/version`'s payload, in Mosquitto's form ("mosquitto version 2.0.11"). */
export const versionLine = `${NAME} version ${VERSION}`
