/**
 * The pieces the bench's `scale-out` scenario adds to the harness: the shared redis-server starter
 * (its pid for CPU readings, the hook that registers it for cleanup, the message when the binary is
 * missing) and the /proc lookup of a `--workers` supervisor's children.
 */
import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { childPids } from "../../bench/lib/procs.ts"
import { start } from "../../bench/lib/redis.ts"

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("bench redis-server starter", () => {
  it("refuses a missing redis-server binary with the command that installs it", async () => {
    await expect(start({ binary: "/nonexistent/redis-server" })).rejects.toThrow(
      /\/nonexistent\/redis-server is not an executable file: install it with `apt-get install -y redis-server`/
    )
  })

  it("reports the pid of the redis-server it spawned (the one onSpawn saw), gone after stop", async () => {
    const spawned: Array<ChildProcess> = []
    const server = await start({ onSpawn: (child) => spawned.push(child) })
    try {
      expect(spawned.map((child) => child.pid)).toContain(server.pid)
      expect(readFileSync(`/proc/${server.pid}/cmdline`, "utf8")).toContain("redis-server")
    } finally {
      await server.stop()
    }
    expect(alive(server.pid)).toBe(false)
  })
})

describe("childPids", () => {
  it("lists a process's children and nothing that is not its child", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" })
    try {
      await new Promise((resolve) => child.once("spawn", resolve))
      const pids = childPids(process.pid)
      expect(pids).toContain(child.pid)
      expect(pids).not.toContain(process.pid)
      expect(childPids(child.pid!)).toEqual([])
    } finally {
      child.kill("SIGKILL")
    }
  })
})
