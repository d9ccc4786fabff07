/**
 * The heap trim end to end (README "Memory"): the real entrypoint, 2,000 real TCP clients
 * connecting at once, then quiet. The broker gives the memory of the burst back — its own debug
 * line says how much — while every client stays connected; with `--memory-trim off` it does not.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import type { IConnackPacket } from "mqtt-packet"
import { eventually, freePort, killEntrypoints, startEntrypoint } from "../support/Entrypoint.ts"
import { encodeConnect, RawClient } from "./harness.ts"

afterEach(killEntrypoints)

const CLIENTS = 2_000
const TRIMMED = /heap trimmed in (\d+) ms: committed heap ([\d.]+) -> ([\d.]+) MB, RSS ([\d.]+) -> ([\d.]+) MB/g

/** Connects `count` clients (MQTT 3.1.1, clean session, keepalive 0), 100 at a time; resolves once each has an accepting CONNACK. */
const connectMany = async (port: number, count: number): Promise<Array<RawClient>> => {
  const clients: Array<RawClient> = []
  for (let start = 0; start < count; start += 100) {
    clients.push(
      ...await Promise.all(Array.from({ length: Math.min(100, count - start) }, async (_, k) => {
        const client = await RawClient.open(port)
        client.write(encodeConnect({ clientId: `trim${start + k}` }))
        const connack = (await client.next("connack", 10_000)) as IConnackPacket
        if (connack.returnCode !== 0) throw new Error(`refused: ${connack.returnCode}`)
        return client
      }))
    )
  }
  return clients
}

/** PINGREQ on `client`, resolves with whether PINGRESP came. */
const pings = (client: RawClient): Promise<boolean> => {
  client.send({ cmd: "pingreq" })
  return client.next("pingresp", 5_000).then(() => true, () => false)
}

const trims = (output: string) => [...output.matchAll(TRIMMED)].map((m) => ({ committedBefore: Number(m[2]), committedAfter: Number(m[3]), rssBefore: Number(m[4]), rssAfter: Number(m[5]) }))

describe("memory trim (entrypoint, real clients)", () => {
  it("after 2,000 clients connect at once and go quiet, the broker gives the burst's memory back and keeps every client", async () => {
    const port = await freePort()
    const broker = await startEntrypoint(["--port", String(port), "--host", "127.0.0.1", "--log-level", "debug", "--sys-interval", "0"])
    const clients = await connectMany(port, CLIENTS)
    expect(await eventually(() => trims(broker.output()).length >= 1, 10_000)).toBe(true)
    const burst = trims(broker.output())[0]!
    expect(burst.committedAfter).toBeLessThan(burst.committedBefore)
    expect(burst.rssAfter).toBeLessThan(burst.rssBefore)
    expect(clients.filter((client) => client.isClosed)).toEqual([])
    expect(await pings(clients[0]!)).toBe(true)
    expect(await pings(clients[CLIENTS - 1]!)).toBe(true)
    for (const client of clients) client.destroy()
  }, 60_000)

  it("with --memory-trim off the same burst is left to V8: no trim", async () => {
    const port = await freePort()
    const broker = await startEntrypoint(["--port", String(port), "--host", "127.0.0.1", "--log-level", "debug", "--sys-interval", "0", "--memory-trim", "off"])
    const clients = await connectMany(port, CLIENTS)
    // a trim would come within 1 s of the quiet; wait three
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    expect(trims(broker.output())).toEqual([])
    expect(broker.output()).toContain("listening on")
    for (const client of clients) client.destroy()
  }, 60_000)
})
