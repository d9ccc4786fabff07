/**
 * The broker process gets its young-generation size on the node command line (YoungGeneration.ts):
 * when and how it re-executes itself, and — with real `npm start`-style processes — that the broker
 * listening is the same process, running with the flags, and that an operator's own size wins.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { afterEach, describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { REEXEC_GUARD, reexecution, type Start, YOUNG_GENERATION_FLAGS } from "../../src/entry/YoungGeneration.ts"
import { freePort, repoRoot } from "../support/Entrypoint.ts"

const start = (overrides: Partial<Start> = {}): Start => ({
  execPath: "/usr/bin/node",
  execArgv: [],
  argv: ["/usr/bin/node", "/srv/broker/src/launch.js", "--port", "1883"],
  env: {},
  canExecve: true,
  ...overrides
})

describe("reexecution", () => {
  it("runs the same script with the same arguments again, the flags before Node's own", () => {
    expect(reexecution(start({ execArgv: ["--expose-gc"] }))).toEqual([
      "/usr/bin/node",
      ...YOUNG_GENERATION_FLAGS,
      "--expose-gc",
      "/srv/broker/src/launch.js",
      "--port",
      "1883"
    ])
  })

  it.each([
    ["--max-semi-space-size=8 on the command line", { execArgv: ["--max-semi-space-size=8"] }],
    ["V8's spelling with underscores", { execArgv: ["--max_semi_space_size=8"] }],
    ["a minimum size only", { execArgv: ["--min-semi-space-size=1"] }],
    ["--max-semi-space-size=0 (V8's default) in NODE_OPTIONS", { env: { NODE_OPTIONS: "--inspect --max-semi-space-size=0" } }],
    ["the re-executed process itself", { env: { [REEXEC_GUARD]: "1" } }],
    ["no execve (Windows)", { canExecve: false }],
    ["no script to run again (node -e)", { argv: ["/usr/bin/node"] }]
  ])("runs as it is with %s", (_, overrides) => {
    expect(reexecution(start(overrides))).toBeUndefined()
  })

  it("does not take a similar flag for a size (--max-semi-space-sizes is not one)", () => {
    expect(reexecution(start({ execArgv: ["--max-semi-space-sizes=8"] }))).toBeDefined()
  })

  it("property: the re-executed command line is the original with the flags inserted after the binary, and itself is never re-executed", () => {
    const arg = fc.string({ minLength: 1 }).filter((s) => !/semi[-_]space/.test(s))
    fc.assert(
      fc.property(fc.array(arg, { maxLength: 4 }), fc.array(arg, { maxLength: 6 }), arg, (execArgv, args, script) => {
        const first = start({ execArgv, argv: ["/usr/bin/node", script, ...args] })
        const line = reexecution(first)!
        expect(line).toEqual([first.execPath, ...YOUNG_GENERATION_FLAGS, ...execArgv, script, ...args])
        // what the re-executed process sees: Node moves the flags into execArgv
        const again = { ...first, execArgv: line.slice(1, 1 + YOUNG_GENERATION_FLAGS.length + execArgv.length) }
        expect(reexecution(again)).toBeUndefined()
      })
    )
  })
})

const children: Array<ChildProcess> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
})

/** `npm start` (src/launch.js) with `nodeFlags` before it; resolves once the broker says it listens. */
const launch = async (nodeFlags: ReadonlyArray<string>) => {
  const port = await freePort()
  const env = { ...process.env }
  delete env["NODE_OPTIONS"]
  delete env[REEXEC_GUARD]
  const child = spawn(process.execPath, [...nodeFlags, "src/launch.js", "--host", "127.0.0.1", "--port", String(port)], {
    cwd: repoRoot,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.push(child)
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const deadline = Date.now() + 30_000
  while (!output.includes("listening on")) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the broker did not listen:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { child, port }
}

/** The command line the kernel runs for `pid` (what V8 parsed its flags from). */
const commandLine = (pid: number): Array<string> => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((arg) => arg !== "")

describe.runIf(process.platform === "linux")("npm start's broker process", () => {
  it("is the process npm start spawned, re-executed with the young-generation flags, and still stops cleanly on SIGTERM", async () => {
    const { child, port } = await launch([])
    const line = commandLine(child.pid!)
    expect(line.slice(1, 1 + YOUNG_GENERATION_FLAGS.length)).toEqual(YOUNG_GENERATION_FLAGS)
    expect(line.slice(-3)).toEqual(["127.0.0.1", "--port", String(port)])
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    child.kill("SIGTERM")
    expect(await exited).toBe(0)
  }, 40_000)

  it("keeps an operator's own --max-semi-space-size and adds none", async () => {
    const { child } = await launch(["--max-semi-space-size=8"])
    const sizes = commandLine(child.pid!).filter((arg) => arg.includes("semi-space"))
    expect(sizes).toEqual(["--max-semi-space-size=8"])
  }, 40_000)
})
