/**
 * Launcher for long property runs, so that flags work where vitest would reject unknown ones:
 *
 *     npm run test:props -- --runs 20000
 *     npm run test:props -- --seed 1234 --path "3:1:0" -t "sessionPresent"
 *
 * `--runs`, `--seed`, `--path`, `--verbose` become PROPS_RUNS, PROPS_SEED, PROPS_PATH and
 * PROPS_VERBOSE (see Props.ts); everything else is passed on to `vitest run test/session`.
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const flags: Record<string, string> = { "--runs": "PROPS_RUNS", "--seed": "PROPS_SEED", "--path": "PROPS_PATH" }
const env: NodeJS.ProcessEnv = { ...process.env }
const passOn: Array<string> = []
const args = process.argv.slice(2)
for (let i = 0; i < args.length; i++) {
  const arg = args[i]!
  const eq = arg.indexOf("=")
  const name = eq < 0 ? arg : arg.slice(0, eq)
  const variable = flags[name]
  if (variable !== undefined) {
    const value = eq < 0 ? args[++i] : arg.slice(eq + 1)
    if (value === undefined) {
      console.error(`${name} needs a value`)
      process.exit(2)
    }
    env[variable] = value
  } else if (arg === "--verbose") {
    env["PROPS_VERBOSE"] = "1"
  } else {
    passOn.push(arg)
  }
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const vitest = path.join(root, "node_modules", "vitest", "vitest.mjs")
console.log(`property runs per property: ${env["PROPS_RUNS"] ?? "200 (default)"}`)
const result = spawnSync(process.execPath, [vitest, "run", "test/session", ...passOn], { cwd: root, env, stdio: "inherit" })
process.exit(result.status ?? 1)
