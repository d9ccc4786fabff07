/**
 * Worker-thread entry for the flood: the 50 senders run on their own event loop (and core), so
 * pushing 16 MB buffers does not stall the in-process broker's event loop and skew what the
 * canary and the innocent clients measure. Posts its FloodReport when told "stop".
 */
import { parentPort, workerData } from "node:worker_threads"
import { startFlood } from "./Flood.ts"

const { connections, payloadBytes, port } = workerData as { port: number; connections: number; payloadBytes: number }
const flood = startFlood(port, connections, payloadBytes)
parentPort!.once("message", async () => {
  parentPort!.postMessage(await flood.stop())
})
