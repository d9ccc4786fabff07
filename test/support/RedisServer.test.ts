import { describe, expect, it } from "@effect/vitest"
import { createConnection } from "node:net"
import * as RedisServer from "./RedisServer.ts"

/** Whether anything accepts a connection on the port. */
const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    socket.once("connect", () => (socket.destroy(), resolve(true)))
    socket.once("error", () => resolve(false))
  })

describe("RedisServer test helper", () => {
  it("starts a redis-server that accepts connections on its port, and stop shuts it down", async () => {
    const server = await RedisServer.start()
    try {
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`)
      expect(await accepts(server.port)).toBe(true)
    } finally {
      await server.stop()
    }
    expect(await accepts(server.port)).toBe(false)
  })
})
