/**
 * `--workers N`: the real entrypoint as a supervisor of N broker processes on one port, with their
 * sessions in a redis-server started for this file (fails when there is none). Process structure
 * is read from /proc: which processes the supervisor forked, and which of them is still alive.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import * as Net from "node:net"
import { freePort } from "../support/Entrypoint.ts"
import * as RedisServer from "../support/RedisServer.ts"
import { type BrokerProcess, connect, end, exited, spawnBroker, startBroker, useCleanup } from "./persistence-harness.ts"

const redisUrl = RedisServer.useRedisServer()

const { running, clients } = useCleanup()

/** The live child processes of `pid` (Linux: the parent is the 4th field of /proc/N/stat). */
const childrenOf = (pid: number): Array<number> =>
  readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      // the command name may hold spaces: the fields after it follow its closing parenthesis
      const [state, parent] = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return Number(parent) === pid && state !== "Z" ? [Number(entry)] : []
    } catch {
      return []
    }
  })

/** Waits until `condition` holds, checking every 50 ms; false after `timeoutMs`. */
const until = async (condition: () => boolean, timeoutMs = 20_000): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (condition()) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return condition()
}

/** The JSON log lines a process wrote with `message`. */
const linesWith = (output: string, message: string): Array<{ readonly annotations: Record<string, unknown> }> =>
  output.split("\n").filter((line) => line.startsWith("{") && line.includes(`"message":"${message}`)).map((line) => JSON.parse(line))

/** The supervisor with two workers on Redis; resolves once both listen. */
const startWorkers = async (): Promise<BrokerProcess> => {
  const broker = await startBroker(["--workers", "2", "--persistence", "redis", "--redis-url", redisUrl()], 60_000)
  running.push(broker)
  expect(await until(() => linesWith(broker.output(), "listening on tcp://").length === 2)).toBe(true)
  return broker
}

describe("--workers", () => {
  it("--workers 2 without --persistence redis is refused before any worker starts: exit 2, one line naming --workers", async () => {
    const { child, output } = spawnBroker(["--host", "127.0.0.1", "--port", "0", "--workers", "2"])
    expect(await exited(child)).toBe(2)
    expect(output().trim().split("\n")).toEqual([
      "effect-mqtt-broker: --workers 2 needs --persistence (MQTT_PERSISTENCE) redis: each worker is a process of its own, and only Redis shares sessions and messages between them"
    ])
  }, 30_000)

  it("two worker processes serve one port, connections go to both in turn, and each worker's lines say which it is", async () => {
    const broker = await startWorkers()
    expect(childrenOf(broker.child.pid!)).toHaveLength(2)
    for (let i = 0; i < 4; i++) {
      const { client } = await connect(broker.port, { clientId: `spread-${i}`, clean: true, protocolVersion: 5 })
      clients.push(client)
    }
    expect(await until(() => linesWith(broker.output(), "client connected").length === 4)).toBe(true)
    const workers = linesWith(broker.output(), "client connected").map((line) => line.annotations["worker"])
    expect(workers.filter((worker) => worker === "1")).toHaveLength(2)
    expect(workers.filter((worker) => worker === "2")).toHaveLength(2)
    for (const client of clients.splice(0)) await end(client)
  }, 90_000)

  it("the workers are one broker: a QoS 1 message published through one worker reaches a subscriber on the other", async () => {
    const broker = await startWorkers()
    const received = new Promise<string>((resolve) => {
      void connect(broker.port, { clientId: "worker-sub", clean: true, protocolVersion: 5 }, (_topic, payload) => resolve(payload.toString()))
        .then(async ({ client }) => {
          clients.push(client)
          await client.subscribeAsync("across/workers", { qos: 1 })
          const { client: publisher } = await connect(broker.port, { clientId: "worker-pub", clean: true, protocolVersion: 5 })
          clients.push(publisher)
          // the peer learns the subscriber's filter through Redis: publish until it arrives
          for (let i = 0; i < 100 && !done; i++) {
            await publisher.publishAsync("across/workers", "hello", { qos: 1 })
            await new Promise((resolve) => setTimeout(resolve, 50))
          }
        })
    })
    let done = false
    expect(await received).toBe("hello")
    done = true
    const connected = linesWith(broker.output(), "client connected")
    const workerOf = (clientId: string) => connected.find((line) => line.annotations["clientId"] === clientId)?.annotations["worker"]
    expect(workerOf("worker-sub")).toBeDefined()
    expect(workerOf("worker-pub")).toBeDefined()
    expect(workerOf("worker-sub")).not.toBe(workerOf("worker-pub"))
  }, 90_000)

  it("a worker killed with kill -9 is replaced and the port keeps serving; SIGTERM then stops every worker and the supervisor exits 0", async () => {
    const broker = await startWorkers()
    const [victim, survivor] = childrenOf(broker.child.pid!)
    process.kill(victim!, "SIGKILL")
    expect(await until(() => /worker \d \(pid \d+\) stopped \(killed by SIGKILL\); starting another/.test(broker.output()))).toBe(true)
    expect(await until(() => linesWith(broker.output(), "listening on tcp://").length === 3)).toBe(true)
    const now = childrenOf(broker.child.pid!)
    expect(now).toHaveLength(2)
    expect(now).toContain(survivor)
    expect(now).not.toContain(victim)
    // both workers (the survivor and the new one) answer on the shared port
    for (let i = 0; i < 2; i++) {
      const { client } = await connect(broker.port, { clientId: `after-kill-${i}`, clean: true, protocolVersion: 4 })
      await end(client)
    }
    const workers = now
    broker.child.kill("SIGTERM")
    expect(await exited(broker.child)).toBe(0)
    expect(await until(() => workers.every((pid) => !childrenOf(broker.child.pid!).includes(pid) && !alive(pid)), 10_000)).toBe(true)
    expect(linesWith(broker.output(), "broker stopped")).toHaveLength(2)
  }, 90_000)

  it("a worker that cannot listen (the port is taken) stops the supervisor: exit 1 and a line saying which worker", async () => {
    const port = await freePort()
    const squatter = Net.createServer()
    await new Promise<void>((resolve) => squatter.listen(port, "127.0.0.1", resolve))
    try {
      const { child, output } = spawnBroker(["--host", "127.0.0.1", "--port", String(port), "--workers", "2", "--persistence", "redis", "--redis-url", redisUrl()])
      expect(await exited(child)).toBe(1)
      expect(output()).toMatch(/effect-mqtt-broker: worker [12] stopped before it listened \(exit code 1\); the workers were stopped/)
      expect(output()).not.toMatch(/listening on tcp/)
    } finally {
      await new Promise((resolve) => squatter.close(resolve))
    }
  }, 60_000)
})

/** Whether a process with this pid still exists (and is not a zombie). */
const alive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"
  } catch {
    return false
  }
}
