/**
 * `npm start`'s entry (src/launch.js) runs the broker from the start bundle (dist/start/main.js,
 * src/entry/bundle.js), rebuilt when a source is newer: the RSS at start stays under issue 16's
 * 80 MB, and the files modules find beside themselves (package.json for the version, the live
 * page) are found from the bundle too. Real processes, ~5 s.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { freePort, repoRoot } from "../support/Entrypoint.ts"

/** Issue 16: RSS of `npm start`'s broker process once it listens. */
const START_RSS_LIMIT_KB = 80 * 1024

const children: Array<ChildProcess> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
})

/** Starts src/launch.js with `args` and resolves once it logs that it listens (or rejects with its output). */
const launch = async (args: ReadonlyArray<string>) => {
  const child = spawn(process.execPath, ["src/launch.js", ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })
  children.push(child)
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
  const deadline = Date.now() + 30_000
  while (!stdout.includes("listening on")) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the broker did not listen:\n${stdout}\n${stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { child, stderr: () => stderr }
}

const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1])

describe("npm start runs the start bundle", () => {
  it("the broker holds at most 80 MB RSS once it listens, and runs from the bundle, not the sources", async () => {
    const port = await freePort()
    const { child, stderr } = await launch(["--host", "127.0.0.1", "--port", String(port)])
    // a moment for what the start left to the event loop (the listener's first turns)
    await new Promise((resolve) => setTimeout(resolve, 500))
    const rss = rssKb(child.pid!)
    expect(stderr()).not.toContain("running from the sources")
    expect(rss).toBeGreaterThan(0)
    expect(rss).toBeLessThanOrEqual(START_RSS_LIMIT_KB)
  }, 40_000)

  it("finds the live page's files and package.json from the bundle: the page is src/dashboard/index.html, --version is package.json's", async () => {
    const [port, metricsPort] = [await freePort(), await freePort()]
    await launch(["--host", "127.0.0.1", "--port", String(port), "--metrics-port", String(metricsPort)])
    const page = await fetch(`http://127.0.0.1:${metricsPort}/`).then((response) => response.text())
    expect(page).toBe(readFileSync(`${repoRoot}src/dashboard/index.html`, "utf8"))

    const version = spawn(process.execPath, ["src/launch.js", "--version"], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })
    children.push(version)
    let printed = ""
    version.stdout.on("data", (chunk: Buffer) => (printed += chunk.toString()))
    await new Promise((resolve) => version.once("close", resolve))
    const manifest = JSON.parse(readFileSync(`${repoRoot}package.json`, "utf8")) as { readonly version: string }
    expect(printed.trim()).toBe(`effect-mqtt-broker v${manifest.version}`)
  }, 40_000)
})
