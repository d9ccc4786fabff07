/**
 * Aedes peer for the benchmark, run in its own process so its CPU is not
 * shared with the load generator. Default options (in-memory persistence);
 * TCP_NODELAY on accepted sockets, like the Mosquitto config.
 *
 *   node bench/peers/aedes-server.ts --port <P>
 *
 * Exits when its stdin closes (i.e. when the harness that spawned it dies).
 */
import * as net from "node:net"
import { Aedes } from "aedes"

const portArg = process.argv.indexOf("--port")
const port = portArg >= 0 ? Number(process.argv[portArg + 1]) : Number.NaN
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write("usage: aedes-server.ts --port <port>\n")
  process.exit(2)
}

const broker = await Aedes.createBroker()
const server = net.createServer({ noDelay: true }, broker.handle)

const shutdown = (): void => {
  server.close()
  broker.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 500).unref()
}
process.on("SIGTERM", shutdown)
process.on("SIGINT", shutdown)
process.stdin.on("end", shutdown)
process.stdin.on("close", shutdown)
process.stdin.resume()

server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`aedes listening on 127.0.0.1:${port}\n`)
})
