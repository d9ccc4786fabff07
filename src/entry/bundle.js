// The start bundle: src/main.ts and everything it imports (effect, @effect/platform-node,
// mqtt-packet, ...) as one tree-shaken, minified ES module in dist/start/, which `npm start`
// (launch.js) and the installed bin run. Why: loading the same code as ~400 separate modules
// (and, from the sources, through Node's TypeScript stripper) costs ~100 MB more RSS than one
// bundle — 178 MB against ~75 MB at start (issue 16). What only some configurations need (the
// Redis and SQLite providers, the metrics server, OTLP) stays behind dynamic imports, so it
// lands in chunks that are loaded only when asked for.
//
// Run by `npm run build`, and by launch.js when the bundle is older than a source file. Plain
// JavaScript, so that it runs without TypeScript stripping; rolldown is a devDependency.
//
// Brokers started at the same moment (the e2e tests start ~20) must neither build side by side
// (each build is ~2 s of both cores) nor import a half-written file: one process builds, holding
// dist/start.lock, the others wait for it and use its bundle; each file is written beside its
// final name and renamed into place; chunk names carry a content hash, so a running broker's
// chunks are never replaced under it.

import { cpSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { dirname, join, relative, sep } from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const SRC = join(ROOT, "src")
const DIST = join(ROOT, "dist")
/** Where the bundle goes; launch.js and bin/ import `main.js` from here. */
export const OUT = join(DIST, "start")
const LOCK = join(DIST, "start.lock")
/** A lock older than this was left by a build that died; the next one takes it over. */
const STALE_LOCK_MS = 120_000

/**
 * `import.meta.url` of a source module, as seen from the bundle: the URL its tsc-built twin has
 * in dist/ (src/dashboard/Dashboard.ts → dist/dashboard/Dashboard.js), so that the paths modules
 * resolve against themselves (the dashboard's static files, package.json for the version) are
 * the same in the bundle as in dist/.
 */
const ownUrl = {
  name: "own-import-meta-url",
  transform(code, id) {
    if (!id.startsWith(SRC + sep) || !code.includes("import.meta.url")) return null
    const twin = join(DIST, relative(SRC, id)).replace(/\.ts$/, ".js")
    const fromBundle = relative(OUT, twin).split(sep).join("/")
    return { code: code.replaceAll("import.meta.url", `new URL(${JSON.stringify(fromBundle)}, import.meta.url).href`), map: null }
  }
}

const writeAtomically = (file, contents) => {
  const temporary = `${file}.${process.pid}.tmp`
  writeFileSync(temporary, contents)
  renameSync(temporary, file)
}

/** Builds the bundle into `OUT`; resolves to the files written. */
export const bundle = async () => {
  const { rolldown } = await import("rolldown")
  const build = await rolldown({
    input: join(SRC, "main.ts"),
    platform: "node",
    treeshake: true,
    logLevel: "silent",
    plugins: [ownUrl]
  })
  // compressed and without whitespace or comments, but with its names: error names and stack
  // traces stay readable (mangling would save ~0.5 MB of RSS more)
  const { output } = await build.generate({
    format: "esm",
    entryFileNames: "main.js",
    minify: { compress: true, mangle: false, codegen: { removeWhitespace: true } },
    comments: false
  })
  await build.close()
  mkdirSync(OUT, { recursive: true })
  const written = new Set()
  // chunks first, the entry last: an entry on disk always finds the chunks it names
  const files = output.filter((file) => file.type === "chunk").sort((a, b) => Number(a.isEntry) - Number(b.isEntry))
  for (const file of files) {
    writeAtomically(join(OUT, file.fileName), file.code)
    written.add(file.fileName)
  }
  // chunks of earlier bundles, once no broker can still be starting from them
  const now = Date.now()
  for (const name of readdirSync(OUT)) {
    const path = join(OUT, name)
    if (!written.has(name) && now - statSync(path).mtimeMs > 60_000) rmSync(path, { force: true })
  }
  // the dashboard's static files, where its URL above points (the same copy `npm run build` makes)
  cpSync(join(SRC, "dashboard"), join(DIST, "dashboard"), { recursive: true, filter: (path) => !path.endsWith(".ts") })
  return [...written]
}

/**
 * Runs `build` holding the lock; when another process holds it, waits until it is released and
 * resolves to `undefined` (that process's bundle is the one to use).
 */
const exclusively = async (build) => {
  mkdirSync(DIST, { recursive: true })
  for (;;) {
    try {
      mkdirSync(LOCK)
      break
    } catch (error) {
      if (error.code !== "EEXIST") throw error
    }
    let since
    try {
      since = statSync(LOCK).mtimeMs
    } catch {
      continue // released just now: try to take it
    }
    if (Date.now() - since > STALE_LOCK_MS) {
      rmSync(LOCK, { recursive: true, force: true })
      continue
    }
    while (existsSync(LOCK) && Date.now() - since <= STALE_LOCK_MS) await new Promise((resolve) => setTimeout(resolve, 100))
    if (!existsSync(LOCK)) return undefined
  }
  try {
    return await build()
  } finally {
    rmSync(LOCK, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  exclusively(bundle).then(
    (files) =>
      process.stdout.write(files === undefined ? "start bundle: built by another process\n" : `start bundle: ${files.length} files in ${relative(ROOT, OUT)}\n`),
    (error) => {
      process.stderr.write(`start bundle failed: ${error && error.message ? error.message : error}\n`)
      process.exit(1)
    }
  )
}
