/**
 * Stress load for `--flood`: many connections each streaming large QoS 1 PUBLISHes in a loop
 * (one in flight per connection), while the fuzz cases, innocent clients and the canary run.
 * Every sender writes the same payload Buffer, so 50 × 16 MB costs 16 MB of test memory.
 */
import { Worker } from "node:worker_threads"
import { RawConnection } from "./Raw.ts"
import * as Wire from "./Wire.ts"

/** What the flood did. */
export interface FloodReport {
  readonly connections: number
  readonly connected: number
  readonly messagesAcked: number
  readonly bytesAcked: number
  /** Senders whose connection failed or closed while flooding. */
  readonly failures: ReadonlyArray<string>
}

/** A running flood. */
export interface Flood {
  readonly stop: () => Promise<FloodReport>
}

/** Starts `connections` senders of `payloadBytes`-byte QoS 1 PUBLISHes to `port`. */
export function startFlood(port: number, connections: number, payloadBytes: number): Flood {
  const payload = Buffer.alloc(payloadBytes, 0x5a)
  let stopped = false
  let connected = 0
  let messagesAcked = 0
  const failures: Array<string> = []
  const open: Array<RawConnection> = []

  const sender = async (index: number) => {
    const topic = `fuzz/flood/${index}`
    const connection = await RawConnection.open(port, 4, 10_000)
    open.push(connection)
    await connection.write(Wire.connect({ version: 4, clientId: `flood-${process.pid}-${index}` }))
    if (!(await connection.waitFor(() => connection.packets.some((p) => p.type === 2 && p.code === 0), 30_000))) {
      throw new Error(`flood-${index}: no CONNACK 0`)
    }
    connected++
    let packetId = 0
    while (!stopped) {
      packetId = (packetId % 0xffff) + 1
      const id = packetId
      // fixed header + topic + packet id, then the shared payload: no 16 MB copy per message
      const head = Wire.packet(0x32, [Wire.str(topic), Wire.u16(id)], 2 + Buffer.byteLength(topic) + 2 + payload.length)
      void connection.write(head)
      void connection.write(payload)
      const acked = await connection.waitFor(() => connection.packets.some((p) => p.type === 4 && p.packetId === id), 120_000)
      if (stopped) break
      if (!acked) throw new Error(`flood-${index}: PUBACK ${id} missing${connection.closed ? ", connection closed" : ""}`)
      connection.packets.length = 0
      messagesAcked++
    }
  }

  const running = Array.from({ length: connections }, (_, index) =>
    sender(index).catch((error: unknown) => {
      if (!stopped) failures.push((error as Error).message)
    })
  )
  return {
    stop: async () => {
      stopped = true
      for (const connection of open) connection.destroy()
      await Promise.all(running)
      return { connections, connected, messagesAcked, bytesAcked: messagesAcked * payloadBytes, failures }
    }
  }
}

/** Runs `startFlood` in a worker thread (see FloodWorker.ts), so the senders do not share the broker's event loop. */
export function startFloodWorker(port: number, connections: number, payloadBytes: number): Flood {
  const worker = new Worker(new URL("./FloodWorker.ts", import.meta.url), { workerData: { port, connections, payloadBytes } })
  const failed: Array<string> = []
  worker.on("error", (error) => failed.push(`flood worker: ${error.message}`))
  return {
    stop: async () => {
      const report = await new Promise<FloodReport>((resolve) => {
        worker.once("message", (message: FloodReport) => resolve(message))
        worker.once("exit", () => resolve({ connections, connected: 0, messagesAcked: 0, bytesAcked: 0, failures: failed }))
        worker.postMessage("stop")
      })
      await worker.terminate()
      return { ...report, failures: [...report.failures, ...failed] }
    }
  }
}
