/**
 * The heap trim end to end (README "Memory"): the real entrypoint, 2,000 real TCP clients
 * connecting at once, then quiet. The broker gives the memory of the burst back — its own debug
 * line says how much — while every client stays connected; with `--memory-trim off` it does not.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import { eventually, freePort, killEntrypoints, startEntrypoint } from "../support/Entrypoint.ts"

afterEach(killEntrypoints)

const CLIENTS = 2_000
const TRIMMED = /heap trimmed in (\d+) ms: committed heap ([\d.]+) -> ([\d.]+) MB, RSS ([\d.]+) -> ([\d.]+) MB/g

/** CONNECT, MQTT 3.1.1, clean session, keepalive 0. */
const connectPacket = (clientId: string): Buffer => {
  const id = Buffer.from(clientId)
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 0, id.length >> 8, id.length & 0xff]), id])
  return Buffer.concat([Buffer.from([0x10, body.length]), body])
}

/** Connects `count` clients, 100 at a time; resolves once each has its CONNACK (0 accepted). */
const connectMany = async (port: number, count: number): Promise<Array<net.Socket>> => {
  const sockets: Array<net.Socket> = []
  for (let start = 0; start < count; start += 100) {
    sockets.push(
      ...await Promise.all(Array.from({ length: Math.min(100, count - start) }, (_, k) =>
        new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect({ port, host: "127.0.0.1" }, () => socket.write(connectPacket(`trim${start + k}`)))
          socket.once("data", (data) => data[0] === 0x20 && data[3] === 0 ? resolve(socket) : reject(new Error(`refused: ${data.toString("hex")}`)))
          socket.once("error", reject)
        })))
    )
  }
  return sockets
}

/** PINGREQ on `socket`, resolves with whether PINGRESP came. */
const pings = (socket: net.Socket): Promise<boolean> =>
  new Promise((resolve) => {
    socket.once("data", (data) => resolve(data[0] === 0xd0))
    socket.write(Buffer.from([0xc0, 0]))
    setTimeout(() => resolve(false), 5_000).unref()
  })

const trims = (output: string) => [...output.matchAll(TRIMMED)].map((m) => ({ committedBefore: Number(m[2]), committedAfter: Number(m[3]), rssBefore: Number(m[4]), rssAfter: Number(m[5]) }))

describe("memory trim (entrypoint, real clients)", () => {
  it("after 2,000 clients connect at once and go quiet, the broker gives the burst's memory back and keeps every client", async () => {
    const port = await freePort()
    const broker = await startEntrypoint(["--port", String(port), "--host", "127.0.0.1", "--log-level", "debug", "--sys-interval", "0"])
    const sockets = await connectMany(port, CLIENTS)
    expect(await eventually(() => trims(broker.output()).length >= 1, 10_000)).toBe(true)
    const burst = trims(broker.output())[0]!
    expect(burst.committedAfter).toBeLessThan(burst.committedBefore)
    expect(burst.rssAfter).toBeLessThan(burst.rssBefore)
    expect(sockets.filter((socket) => socket.destroyed)).toEqual([])
    expect(await pings(sockets[0]!)).toBe(true)
    expect(await pings(sockets[CLIENTS - 1]!)).toBe(true)
    for (const socket of sockets) socket.destroy()
  }, 60_000)

  it("with --memory-trim off the same burst is left to V8: no trim", async () => {
    const port = await freePort()
    const broker = await startEntrypoint(["--port", String(port), "--host", "127.0.0.1", "--log-level", "debug", "--sys-interval", "0", "--memory-trim", "off"])
    const sockets = await connectMany(port, CLIENTS)
    // a trim would come within 1 s of the quiet; wait three
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    expect(trims(broker.output())).toEqual([])
    expect(broker.output()).toContain("listening on")
    for (const socket of sockets) socket.destroy()
  }, 60_000)
})
