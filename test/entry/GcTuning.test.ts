import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { V8_FLAGS } from "../../src/entry/GcTuning.ts"

describe("GcTuning", () => {
  // setFlagsFromString ignores a flag V8 does not know without a word; the command line refuses it
  it.each(V8_FLAGS)("%s is a flag this Node's V8 knows (node refuses an unknown one)", (flag) => {
    const run = spawnSync(process.execPath, [flag, "-e", "0"], { encoding: "utf8" })
    expect(run.stderr).toBe("")
    expect(run.status).toBe(0)
  })

  it("the check above does refuse an unknown flag", () => {
    const run = spawnSync(process.execPath, ["--no-parallel-scavenge-typo", "-e", "0"], { encoding: "utf8" })
    expect(run.status).not.toBe(0)
  })
})
