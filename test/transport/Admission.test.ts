import { describe, expect, it } from "vitest"
import * as Net from "node:net"
import { blockList } from "../../src/transport/Admission.ts"

/** Opens a connection and says how it ended: "served" when the server wrote to it, else "closed". */
const outcome = (port: number): Promise<"served" | "closed"> =>
  new Promise((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.once("data", () => {
      socket.destroy()
      resolve("served")
    })
    socket.once("close", () => resolve("closed"))
    socket.once("error", () => undefined)
  })

describe("Admission", () => {
  it("a connection admit refuses is closed by Node before the server sees it; the others are served, and admit is asked the peer's address", async () => {
    const asked: Array<string> = []
    let open = false
    let served = 0
    const server = Net.createServer({ blockList: blockList((address) => (asked.push(address), open)) }, (socket) => {
      served++
      socket.end("hello")
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const { port } = server.address() as Net.AddressInfo
    try {
      expect(await outcome(port)).toBe("closed")
      expect(served).toBe(0)
      open = true
      expect(await outcome(port)).toBe("served")
      expect(served).toBe(1)
      expect(asked).toEqual(["127.0.0.1", "127.0.0.1"])
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })
})
