import { describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import { startTestBroker } from "../support/TestBroker.ts"

/** Holds a loopback port open, so a broker asked for it finds it in use. */
async function occupy(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const { port } = server.address() as net.AddressInfo
  return { port, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

describe("ListenerError", () => {
  it("a port in use is a ListenerError naming the listener and 'address already in use'", async () => {
    const held = await occupy()
    try {
      const error = await startTestBroker({ port: held.port }).then(
        async (broker) => {
          await broker.stop()
          return undefined
        },
        (error: Error & { reason?: { _tag?: string } }) => error
      )
      expect(error?.name).toBe("ListenerError")
      expect(error?.reason?._tag).toBe("AddressInUse")
      expect(error?.message).toBe(`cannot listen on tcp://127.0.0.1:${held.port}: address already in use`)
    } finally {
      await held.close()
    }
  })

  it("when a later listener fails, the TCP listener already started is closed again", async () => {
    const held = await occupy()
    const tcp = await occupy()
    await tcp.close()
    try {
      const outcome = await startTestBroker({ port: tcp.port, webSocket: { port: held.port, host: "127.0.0.1" } }).then(
        async (broker) => {
          await broker.stop()
          return "started"
        },
        (error: Error) => error.message
      )
      expect(outcome).toBe(`cannot listen on ws://127.0.0.1:${held.port}: address already in use`)
      // the TCP port is free again: binding it succeeds
      const again = net.createServer()
      await new Promise<void>((resolve, reject) => {
        again.once("error", reject)
        again.listen(tcp.port, "127.0.0.1", () => resolve())
      })
      await new Promise<void>((resolve) => again.close(() => resolve()))
    } finally {
      await held.close()
    }
  })
})
