/** The package version `--version` prints, read from package.json so a release cannot forget it. */
import { readFileSync } from "node:fs"

/**
 * The `version` of the package root's package.json (two folders up, from `src/entry/` as from the
 * built `dist/entry/`); "unknown" if it cannot be read, which must not stop a broker.
 */
export const packageVersion = (): string => {
  try {
    const manifest: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"))
    const version = typeof manifest === "object" && manifest !== null && "version" in manifest ? manifest.version : undefined
    return typeof version === "string" ? version : "unknown"
  } catch {
    return "unknown"
  }
}
