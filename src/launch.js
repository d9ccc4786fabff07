// The `npm start` entry. Plain JavaScript without dependencies, so that any Node can run it and
// say in one line why it cannot run the broker, instead of failing inside a dependency or on
// TypeScript syntax. ESM imports are hoisted, so this check cannot live in main.ts itself: it
// runs first here, and only then is the broker imported.
//
// The broker runs from the start bundle (dist/start/main.js, see entry/bundle.js): one minified
// module instead of ~400, ~75 MB of RSS at start instead of ~180 MB. The bundle is rebuilt first
// (in a child process, ~2 s) when a source file, package.json or package-lock.json is newer than
// it. Without rolldown (an install with --omit=dev, like the Dockerfile's) the broker runs from
// the sources as before; a build that fails says so in one line, then runs from the sources.

import { spawnSync } from "node:child_process"
import { readdirSync, statSync } from "node:fs"
import { fileURLToPath } from "node:url"

const MINIMUM = [22, 19]
const version = process.versions.node
const [major, minor] = version.split(".").map(Number)
// type stripping (how Node runs the .ts sources) is on by default from 22.18 and 23.6
const typeStripping = major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18)
const recentEnough = major > MINIMUM[0] || (major === MINIMUM[0] && minor >= MINIMUM[1])

const path = (relative) => fileURLToPath(new URL(relative, import.meta.url))
const BUNDLE = path("../dist/start/main.js")

const modified = (file) => {
  try {
    return statSync(file).mtimeMs
  } catch {
    return -1
  }
}

/** The newest modification time under `dir` (recursively). */
const newest = (dir) => {
  let latest = modified(dir)
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = `${dir}/${entry.name}`
    latest = Math.max(latest, entry.isDirectory() ? newest(file) : modified(file))
  }
  return latest
}

/** Whether dist/start/main.js is at least as new as everything it is built from. */
const bundleIsFresh = () => {
  const built = modified(BUNDLE)
  if (built < 0) return false
  const inputs = [newest(path(".")), modified(path("../package.json")), modified(path("../package-lock.json"))]
  return inputs.every((time) => time <= built)
}

/** The module to run: the bundle, rebuilt first when stale; the sources when it cannot be built. */
const entry = () => {
  if (bundleIsFresh()) return BUNDLE
  const sources = path("./main.ts")
  if (modified(path("../node_modules/rolldown/package.json")) < 0) return sources
  const build = spawnSync(process.execPath, [path("./entry/bundle.js")], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" })
  if (build.status === 0 && modified(BUNDLE) >= 0) return BUNDLE
  const reason = (build.stderr || "").trim().split("\n").at(-1) || `exit ${build.status}`
  process.stderr.write(`effect-mqtt-broker: running from the sources (${reason})\n`)
  return sources
}

if (!recentEnough || !typeStripping) {
  process.stderr.write(
    `effect-mqtt-broker: needs Node >= ${MINIMUM.join(".")} (this is ${version}); run it through npm start, which uses the pinned Node 24\n`
  )
  process.exit(1)
} else {
  import(entry()).catch((error) => {
    // the broker failed to load (a missing dependency: `npm ci` not run); its own errors are handled inside
    process.stderr.write(`effect-mqtt-broker: cannot load the broker: ${error && error.message ? error.message : error}\n`)
    process.exit(1)
  })
}
