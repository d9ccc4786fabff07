/**
 * PACKAGING TEST: the package as another app installs it. `npm pack` (its `prepack` builds dist/)
 * runs in a temporary copy of the package sources, so the repository's own dist/ is left alone;
 * the tarball is installed offline into a temporary app whose node_modules already holds the
 * runtime dependencies, copied from the repository's node_modules (no registry, no npm cache).
 * Against that install: the README's embed example logic in plain JavaScript with mqtt.js, the
 * README's examples type-checked against the installed .d.ts, and the `effect-mqtt-broker` bin.
 * About 20 s (alone on 2 cores): the build, copying the dependencies and the type check take most.
 */
import { execFile } from "node:child_process"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"

const run = promisify(execFile)
const repoRoot = fileURLToPath(new URL("../../", import.meta.url))
const fixture = (name: string) => fileURLToPath(new URL(`consumer/${name}`, import.meta.url))
const manifest = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
  readonly name: string
  readonly version: string
}

// npm, the bin's `#!/usr/bin/env node` and the scripts npm runs find the pinned Node first
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env["PATH"] ?? ""}` }
const sh = (file: string, args: ReadonlyArray<string>, cwd: string, timeout = 60_000) =>
  run(file, args, { cwd, env, timeout, maxBuffer: 16 * 1024 * 1024 })

/**
 * The directories (relative to `root`) of the packages `root`'s package.json needs at run time:
 * dependencies and required peer dependencies, transitively, each found as Node finds it (the
 * nearest node_modules going up). npm installs exactly these next to the package.
 */
const runtimeClosure = (root: string): ReadonlyArray<string> => {
  const found = new Set<string>()
  const locate = (from: string, name: string): string => {
    for (let dir = from;; dir = dirname(dir)) {
      const candidate = join(dir, "node_modules", name)
      if (existsSync(join(candidate, "package.json"))) return candidate
      if (dir === root || dir === dirname(dir)) throw new Error(`${name} (needed by ${from}) is not installed: run npm ci`)
    }
  }
  const visit = (dir: string) => {
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))
    const optionalPeers: Record<string, { optional?: boolean }> = pkg.peerDependenciesMeta ?? {}
    const names = [
      ...Object.keys(pkg.dependencies ?? {}),
      ...Object.keys(pkg.peerDependencies ?? {}).filter((name) => optionalPeers[name]?.optional !== true)
    ]
    for (const name of names) {
      const location = locate(dir, name)
      if (!found.has(location)) {
        found.add(location)
        visit(location)
      }
    }
  }
  visit(root)
  return [...found].map((dir) => relative(root, dir))
}

/**
 * The declaration files `entry` reaches through relative imports (`./x.ts` and `./x.js` both
 * name `./x.d.ts`), as absolute paths: the ones an app's type check must load.
 */
const reachableDeclarations = (entry: string): ReadonlyArray<string> => {
  const found = new Set([entry])
  for (const file of found) {
    for (const match of readFileSync(file, "utf8").matchAll(/(?:from|import\()\s*"(\.{1,2}\/[^"]+)"/g)) {
      found.add(resolve(dirname(file), match[1]!.replace(/\.[jt]s$/, ".d.ts")))
    }
  }
  return [...found]
}

describe("the packed package, installed into another app (packaging test, ~20 s)", () => {
  let work = ""
  let app = ""
  let installed = ""
  let packed: ReadonlyArray<string> = []

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "mqtt-pack-"))
    app = join(work, "app")
    installed = join(app, "node_modules", manifest.name)
    const source = join(work, "source")
    // what the build and npm pack read; dist/ is built there by prepack
    for (const entry of ["package.json", "README.md", "tsconfig.json", "tsconfig.build.json", "src", "bin"]) {
      cpSync(join(repoRoot, entry), join(source, entry), { recursive: true })
    }
    for (const license of readdirSync(repoRoot).filter((name) => /^licen[cs]e/i.test(name))) {
      cpSync(join(repoRoot, license), join(source, license))
    }
    symlinkSync(join(repoRoot, "node_modules"), join(source, "node_modules"), "dir")
    const { stdout } = await sh("npm", ["pack", "--json", "--pack-destination", work], source)
    const [result] = JSON.parse(stdout.slice(stdout.indexOf("["))) as Array<{ filename: string; files: Array<{ path: string }> }>
    packed = result!.files.map((file) => file.path)

    mkdirSync(app)
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer-app", private: true, type: "module" }))
    for (const dir of runtimeClosure(repoRoot)) cpSync(join(repoRoot, dir), join(app, dir), { recursive: true })
    await sh("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", join(work, result!.filename)], app)
    // mqtt.js, which the consumer connects with, came in as the package's own dependency (the
    // live page serves its browser build)
  }, 120_000)

  afterAll(() => {
    if (work !== "") rmSync(work, { recursive: true, force: true })
  })

  it("packs the built JavaScript with its .d.ts, the bin and the README, and no sources or tests", () => {
    expect(packed).toEqual(expect.arrayContaining([
      "package.json",
      "README.md",
      "bin/effect-mqtt-broker.js",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/main.js",
      "dist/broker/Broker.js",
      "dist/broker/Broker.d.ts",
      // the live page's static files, copied by the build
      "dist/dashboard/index.html",
      "dist/dashboard/dashboard.js",
      "dist/dashboard/dashboard.css"
    ]))
    const unexpected = packed.filter((path) =>
      !["package.json", "README.md", "bin/effect-mqtt-broker.js"].includes(path) &&
      !/^LICEN[CS]E/i.test(path) &&
      !/^dist\/.+\.(js|d\.ts)$/.test(path) &&
      !/^dist\/dashboard\/[a-z]+\.(html|css)$/.test(path)
    )
    expect(unexpected).toEqual([])
  })

  it("emits JavaScript that imports .js files only (Node cannot load a .ts file from node_modules)", () => {
    const tsImports = packed
      .filter((path) => path.endsWith(".js"))
      .flatMap((path) =>
        [...readFileSync(join(installed, path), "utf8").matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)]
          .map((match) => match[1]!)
          .filter((specifier) => !specifier.endsWith(".js"))
          .map((specifier) => `${path}: ${specifier}`)
      )
    expect(tsImports).toEqual([])
  })

  it("runs the README's embed example from plain JavaScript: a Layer-started broker on port 0 delivers to mqtt.js, then stops", async () => {
    cpSync(fixture("roundtrip.mjs"), join(app, "roundtrip.mjs"))
    // the process must end by itself once the Layer's scope closes: a leftover listener or timer hangs it
    const { stdout } = await sh(process.execPath, ["roundtrip.mjs"], app, 20_000)
    const line = stdout.split("\n").find((text) => text.startsWith("{"))
    expect(line, stdout).toBeDefined()
    const result = JSON.parse(line!) as { port: number; received: Array<string> }
    expect(result.port).toBeGreaterThan(0)
    expect([...result.received].sort()).toEqual(["greetings=hello", "status=up"])
    expect(stdout).toContain("broker stopped")
  }, 30_000)

  it("type-checks the README's examples against the installed .d.ts, every declaration they reach resolved", async () => {
    for (const example of ["embed.ts", "security.ts"]) cpSync(join(repoRoot, "examples", example), join(app, example))
    cpSync(fixture("types.ts"), join(app, "types.ts"))
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        // an app's own settings: no allowImportingTsExtensions (the .d.ts files import ./x.ts,
        // which TypeScript allows in declarations whatever the settings); skipLibCheck as tsc --init
        // sets it: checking effect's declarations too would double this test's CPU time
        compilerOptions: {
          target: "es2023",
          module: "nodenext",
          moduleResolution: "nodenext",
          types: ["node"],
          strict: true,
          exactOptionalPropertyTypes: true,
          skipLibCheck: true,
          noEmit: true
        },
        files: ["embed.ts", "security.ts", "types.ts"]
      })
    )
    const tsc = join(repoRoot, "node_modules", "typescript", "bin", "tsc")
    const { stdout } = await sh(process.execPath, [tsc, "-p", "tsconfig.json", "--listFiles"], app).catch((error) => {
      throw new Error(`tsc failed:\n${error.stdout}${error.stderr}`)
    })
    // the types came from the package's dist/, every relative import of its declarations resolved
    // (one that does not would silently be `any` under skipLibCheck)
    const loaded = new Set(stdout.split("\n").map((line) => line.trim()))
    const declarations = reachableDeclarations(join(installed, "dist", "index.d.ts"))
    expect(declarations.length).toBeGreaterThan(20)
    expect(declarations.filter((file) => !loaded.has(file))).toEqual([])
  }, 60_000)

  it("installs the effect-mqtt-broker bin, which runs the broker's command line", async () => {
    const bin = join(app, "node_modules", ".bin", "effect-mqtt-broker")
    const [version, help, refused] = await Promise.all([
      sh(bin, ["--version"], app, 20_000),
      sh(bin, ["--help"], app, 20_000),
      // a bad value is refused as by npm start: one line naming the flag, exit code 2
      sh(bin, ["--port", "-1"], app, 20_000).then(
        () => ({ code: 0, stderr: "" }),
        (error: { code: number; stderr: string }) => error
      )
    ])
    expect(version.stdout.trim()).toBe(`${manifest.name} v${manifest.version}`)
    expect(help.stdout).toContain("--port")
    expect(refused.code).toBe(2)
    expect(refused.stderr).toBe("effect-mqtt-broker: --port -1 is not a port (0-65535)\n")
  }, 60_000)
})
