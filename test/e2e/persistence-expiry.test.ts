/**
 * Session expiry across a restart: an offline session's expiry is counted from the disconnect time
 * stored with it, not from when the broker came back. Real entrypoint, `--persistence sqlite`, `kill -9`.
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { connect, end, exited, startProcess, useCleanup } from "./persistence-harness.ts"

const { running, clients, dirs } = useCleanup()

const sleepUntil = (at: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())))

const session = async (port: number, clientId: string, expiry: number) => {
  const connected = await connect(port, { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: expiry } })
  clients.push(connected.client)
  return connected
}

describe("persistence: session expiry across a restart", () => {
  it("an offline session expires at its stored disconnect time + expiry interval, however long the broker was down; a longer one is resumed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mqtt-expiry-"))
    dirs.push(dir)
    const file = join(dir, "broker.db")
    let broker = await startProcess(file)
    running.push(broker)
    for (const [clientId, expiry] of [["expiry-short", 3], ["expiry-long", 600]] as const) {
      const { client } = await session(broker.port, clientId, expiry)
      await client.subscribeAsync("expiry/t", { qos: 1 })
      await end(client)
    }
    const disconnectedAt = Date.now()
    await broker.kill9()
    // down for 1.5 s: counted from the restart, the short session would last until at least +4.5 s
    await sleepUntil(disconnectedAt + 1500)
    broker = await startProcess(file)
    running.push(broker)
    await sleepUntil(disconnectedAt + 4000)
    const short = await session(broker.port, "expiry-short", 3)
    const long = await session(broker.port, "expiry-long", 600)
    expect(short.sessionPresent).toBe(false)
    expect(long.sessionPresent).toBe(true)
    // the resumed one still has its subscription: a message reaches it without a new SUBSCRIBE
    const got = new Promise<string>((resolve) => long.client.once("message", (_t, payload) => resolve(payload.toString())))
    await short.client.publishAsync("expiry/t", "after-restart", { qos: 1 })
    expect(await got).toBe("after-restart")
    await end(short.client)
    await end(long.client)

    broker.child.kill("SIGTERM")
    expect(await exited(broker.child)).toBe(0)
    // stored: the long session; the short one ended and its new connection (clean=0, expiry 3) left one of its own
    const db = new DatabaseSync(file, { readOnly: true })
    const stored = db.prepare("SELECT client_id FROM sessions ORDER BY client_id").all().map((row) => (row as { client_id: string }).client_id)
    db.close()
    expect(stored).toEqual(["expiry-long", "expiry-short"])
  }, 60_000)
})
