/**
 * Aedes peer for the benchmark, run in its own process so its CPU is not
 * shared with the load generator. Default options (in-memory persistence);
 * TCP_NODELAY on accepted sockets, like the Mosquitto config.
 *
 *   node bench/peers/aedes-server.ts --port <P> [--auth USER:PASSWORD]
 *
 * With --auth, an authenticate hook accepts only that user and password
 * (the auth-flood scenario), refusing everyone else with "bad user name or
 * password".
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

const authArg = process.argv.indexOf("--auth")
const auth = authArg >= 0 ? process.argv[authArg + 1] : undefined
const sep = auth?.indexOf(":") ?? -1
const user = auth !== undefined && sep > 0 ? auth.slice(0, sep) : undefined
const pass = auth !== undefined && sep > 0 ? auth.slice(sep + 1) : undefined

const broker = await Aedes.createBroker(
  user === undefined
    ? {}
    : {
      authenticate: (_client, username, password, done) => {
        if (username === user && password !== undefined && password.toString() === pass) done(null, true)
        else {
          // Aedes turns an error's returnCode into the CONNACK code (4 = bad user name or password)
          const err = Object.assign(new Error("bad user name or password"), { returnCode: 4 })
          done(err as never, false)
        }
      }
    }
)
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
