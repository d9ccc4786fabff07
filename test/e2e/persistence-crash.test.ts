/**
 * Durable sessions through a crash: the real entrypoint with `--persistence sqlite`, persistent
 * subscribers offline, a publisher whose QoS 1 messages were each PUBACKed, then `kill -9` and a
 * restart on the same file. Every subscriber resumes its session (sessionPresent) and receives
 * every acknowledged message (at least once; a repeat carries DUP), and retained messages are
 * still there. Small by default; `CRASH_FULL=1` (`npm run test:crash`) runs 100 clients × 10,000
 * messages and prints its timings.
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { connect, end, exited, type OnMessage, spawnBroker, startProcess, useCleanup } from "./persistence-harness.ts"

const FULL = process.env["CRASH_FULL"] === "1"
const CLIENTS = FULL ? 100 : 10
const MESSAGES = FULL ? 10_000 : 200
const RETAINED = 3

const { running, clients, dirs } = useCleanup()

const tempFile = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-crash-"))
  dirs.push(dir)
  return join(dir, "broker.db")
}

const start = async (file: string, queue = MESSAGES) => {
  const broker = await startProcess(file, ["--max-queued-messages", String(queue)])
  running.push(broker)
  return broker
}

const tracked = async (port: number, options: Parameters<typeof connect>[1], onMessage?: OnMessage) => {
  const connected = await connect(port, options, onMessage)
  clients.push(connected.client)
  return connected
}

const log = (line: string) => {
  if (FULL || process.env["CRASH_LOG"] === "1") process.stdout.write(`[crash ${CLIENTS}x${MESSAGES}] ${line}\n`)
}

describe("persistence: kill -9 and restart", () => {
  it(`${CLIENTS} persistent subscribers get all ${MESSAGES} acknowledged QoS 1 messages after kill -9 and restart, with their sessions present and the retained messages kept`, async () => {
    const file = tempFile()
    let broker = await start(file)
    let t0 = performance.now()
    for (let i = 0; i < CLIENTS; i++) {
      const { client } = await tracked(broker.port, { clientId: `crash-${i}`, clean: false, protocolVersion: 4 })
      await client.subscribeAsync("crash/data", { qos: 1 })
      await end(client)
    }
    const { client: publisher } = await tracked(broker.port, { clientId: "crash-publisher", clean: true, protocolVersion: 4 })
    for (let r = 0; r < RETAINED; r++) await publisher.publishAsync(`keep/${r}`, `retained-${r}`, { qos: 1, retain: true })
    const acknowledged: Array<number> = []
    await Promise.all(
      Array.from({ length: MESSAGES }, (_, i) => publisher.publishAsync("crash/data", String(i), { qos: 1 }).then(() => acknowledged.push(i)))
    )
    const published = performance.now() - t0
    log(`acknowledged ${acknowledged.length}`)
    expect(acknowledged.length).toBe(MESSAGES)
    // no DISCONNECT, no shutdown: the last PUBACK arrived and the process dies
    await broker.kill9()
    publisher.end(true)
    log(`published ${MESSAGES} QoS 1 messages to ${CLIENTS} offline sessions in ${published.toFixed(0)} ms (${(MESSAGES / published * 1000).toFixed(0)} msg/s)`)

    t0 = performance.now()
    broker = await start(file)
    log(`restarted in ${(performance.now() - t0).toFixed(0)} ms`)

    t0 = performance.now()
    const results = await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
      const seen = new Map<string, number>()
      const undupedRepeats: Array<string> = []
      let resolveAll!: () => void
      const all = new Promise<void>((resolve) => (resolveAll = resolve))
      const { client, sessionPresent } = await tracked(broker.port, {
        clientId: `crash-${i}`,
        clean: false,
        protocolVersion: 4,
        // no SUBSCRIBE on resume: the stored session alone must route and deliver
        resubscribe: false
      }, (_topic, payload, packet) => {
        const text = payload.toString()
        const count = seen.get(text) ?? 0
        if (count > 0 && !packet.dup) undupedRepeats.push(text)
        seen.set(text, count + 1)
        if (seen.size === MESSAGES) resolveAll()
      })
      await all
      await end(client)
      return { sessionPresent, seen, undupedRepeats }
    }))
    log(`${CLIENTS} clients drained ${CLIENTS * MESSAGES} messages in ${(performance.now() - t0).toFixed(0)} ms`)
    for (const { sessionPresent, seen, undupedRepeats } of results) {
      expect(sessionPresent).toBe(true)
      expect(acknowledged.every((i) => seen.has(String(i)))).toBe(true)
      expect(undupedRepeats).toEqual([])
    }

    const { client: reader } = await tracked(broker.port, { clientId: "crash-reader", clean: true, protocolVersion: 4 })
    const retained = new Map<string, string>()
    const gotAll = new Promise<void>((resolve) =>
      reader.on("message", (topic, payload, packet) => {
        if (packet.retain) retained.set(topic, payload.toString())
        if (retained.size === RETAINED) resolve()
      })
    )
    await reader.subscribeAsync("keep/#", { qos: 1 })
    await gotAll
    expect(Object.fromEntries(retained)).toEqual(Object.fromEntries(Array.from({ length: RETAINED }, (_, r) => [`keep/${r}`, `retained-${r}`])))

    broker.child.kill("SIGTERM")
    expect(await exited(broker.child)).toBe(0)
  }, FULL ? 1_800_000 : 60_000)

  it("killed while QoS 1 PUBLISHes are still arriving, every message acknowledged before the kill reaches every persistent subscriber after the restart", async () => {
    const file = tempFile()
    const subscribers = 5
    const total = 2000
    let broker = await start(file, total)
    for (let i = 0; i < subscribers; i++) {
      const { client } = await tracked(broker.port, { clientId: `midway-${i}`, clean: false, protocolVersion: 4 })
      await client.subscribeAsync("midway/data", { qos: 1 })
      await end(client)
    }
    const { client: publisher } = await tracked(broker.port, { clientId: "midway-publisher", clean: true, protocolVersion: 4 })
    const acknowledged: Array<number> = []
    let killed: Promise<void> | undefined
    const attempts = Array.from({ length: total }, (_, i) =>
      publisher.publishAsync("midway/data", String(i), { qos: 1 }).then(
        () => {
          // PUBACKs that arrive after the kill was decided are not counted: they may race the signal
          if (killed !== undefined) return
          acknowledged.push(i)
          if (acknowledged.length === total / 4) killed = broker.kill9()
        },
        () => {}
      ))
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (killed !== undefined) {
          clearInterval(check)
          resolve()
        }
      }, 5)
    })
    await killed
    log(`killed after ${acknowledged.length} acks`)
    publisher.end(true)
    void Promise.allSettled(attempts)
    expect(acknowledged.length).toBe(total / 4)

    broker = await start(file, total)
    for (let i = 0; i < subscribers; i++) {
      const seen = new Set<string>()
      let done!: () => void
      const all = new Promise<void>((resolve) => (done = resolve))
      const check = () => {
        if (acknowledged.every((n) => seen.has(String(n)))) done()
      }
      const { client, sessionPresent } = await tracked(broker.port, { clientId: `midway-${i}`, clean: false, protocolVersion: 4, resubscribe: false }, (_t, payload) => {
        seen.add(payload.toString())
        check()
      })
      expect(sessionPresent).toBe(true)
      check()
      const timer = setTimeout(() => log(`midway-${i}: missing ${acknowledged.filter((n) => !seen.has(String(n))).slice(0, 20).join(",")} of ${acknowledged.length}; seen ${seen.size}`), 5000)
      await all
      clearTimeout(timer)
      await end(client)
    }
  }, 60_000)

  it("a database file that is not one stops the broker with one line naming it and exit 1, and is left untouched", async () => {
    const file = tempFile()
    const garbage = Buffer.alloc(16_384, "this is not an SQLite database ")
    writeFileSync(file, garbage)
    const { child, output } = spawnBroker(["--host", "127.0.0.1", "--port", "0", "--persistence", "sqlite", "--persistence-file", file])
    expect(await exited(child)).toBe(1)
    const errorLines = output().split("\n").filter((line) => line.startsWith("effect-mqtt-broker:"))
    expect(errorLines).toEqual([`effect-mqtt-broker: session store: cannot use the persistence file ${file}: file is not a database`])
    expect(output()).not.toMatch(/listening on/)
    expect(readFileSync(file).equals(garbage)).toBe(true)
  }, 30_000)

  it("a database file that cannot be opened stops the broker with one line naming it and exit 1", async () => {
    const file = join(tempFile(), "..", "missing-dir", "broker.db")
    const { child, output } = spawnBroker(["--host", "127.0.0.1", "--port", "0", "--persistence", "sqlite", "--persistence-file", file])
    expect(await exited(child)).toBe(1)
    expect(output()).toContain(`effect-mqtt-broker: session store: cannot use the persistence file ${file}: unable to open database file`)
    expect(output()).not.toMatch(/listening on/)
  }, 30_000)
})
