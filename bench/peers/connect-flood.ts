/**
 * The auth-flood scenario's generator of wrong-password CONNECTs, in its own
 * process: thousands of connects per second cost their opener event-loop time
 * (socket setup, connect callbacks, teardown), and in the harness's process
 * that would delay the latency probe's timestamps whatever the broker does.
 * Started with `fork` (IPC channel):
 *
 *   node bench/peers/connect-flood.ts --port P --rate R --user U --password W --timeout MS
 *
 * Once "start" arrives it opens R new TCP connections per second; each sends
 * one MQTT 3.1.1 CONNECT with user U and password W and is closed as soon as
 * its CONNACK arrives, or after MS without one. Connections are reset
 * (RST) rather than closed, so thousands of them leave no TIME_WAIT entries
 * eating the loopback's ephemeral ports between runs.
 *
 * Parent → child: "start", "stop". Child → parent: { ready }, then after
 * "stop", once every open connection has ended, { stopped: FloodCounts }.
 * Exits when the IPC channel closes.
 */
import * as net from "node:net"
import { encodeConnect } from "../lib/wire.ts"

/** What happened to the connections the flood opened. */
export interface FloodCounts {
  /** connections opened */
  readonly attempted: number
  /** CONNACKs received, by return code ("0" would mean a wrong password was accepted) */
  readonly connacks: Readonly<Record<string, number>>
  /** closed by the broker without a CONNACK */
  readonly closedWithoutConnack: number
  /** no CONNACK within the timeout */
  readonly timeouts: number
  /** TCP errors (refused, reset before CONNACK, ...) */
  readonly errors: number
  /** connections not opened because `maxOpen` were still waiting (the broker fell that far behind) */
  readonly skipped: number
  /** ms from "start" to "stop" */
  readonly wallMs: number
}

/** What the child reports to the harness. */
export type FloodReport =
  | { readonly ready: true }
  | { readonly stopped: FloodCounts }
  | { readonly error: string }

const arg = (name: string): string => {
  const i = process.argv.indexOf(name)
  const v = i >= 0 ? process.argv[i + 1] : undefined
  if (v === undefined) {
    process.stderr.write("usage: connect-flood.ts --port P --rate R --user U --password W --timeout MS\n")
    process.exit(2)
  }
  return v
}

const send = (m: FloodReport): void => void process.send?.(m)

const port = Number(arg("--port"))
const rate = Number(arg("--rate"))
const user = arg("--user")
const password = arg("--password")
const timeoutMs = Number(arg("--timeout"))
// a broker that stops answering must not make the generator hold unbounded sockets
const maxOpen = Math.max(1_000, Math.ceil((rate * timeoutMs) / 1000) * 2)

let running = false
let attempted = 0
let closedWithoutConnack = 0
let timeouts = 0
let errors = 0
let skipped = 0
let open = 0
let t0 = 0
let wallMs = 0
let stopWaiter: (() => void) | undefined
const connacks: Record<string, number> = {}

const ended = (): void => {
  open--
  if (open === 0 && !running) stopWaiter?.()
}

const openOne = (): void => {
  if (open >= maxOpen) {
    skipped++
    return
  }
  attempted++
  open++
  // a fresh client id per connection, as a real guessing attack would use
  const connect = encodeConnect({ clientId: `flood${process.pid}-${attempted}`, clean: true, keepalive: 0, username: user, password })
  const socket = net.connect({ port, host: "127.0.0.1", noDelay: true })
  let done = false
  let rx: Buffer = Buffer.alloc(0)
  const finish = (outcome: () => void): void => {
    if (done) return
    done = true
    clearTimeout(timer)
    outcome()
    socket.resetAndDestroy()
    ended()
  }
  const timer = setTimeout(() => finish(() => void timeouts++), timeoutMs)
  socket.once("connect", () => socket.write(connect))
  socket.on("data", (chunk: Buffer) => {
    rx = rx.length === 0 ? chunk : Buffer.concat([rx, chunk])
    // CONNACK: 0x20, remaining length 2, flags, return code
    if (rx.length < 4) return
    const rc = rx[0] === 0x20 ? String(rx[3]) : `packet type ${rx[0]! >> 4}`
    finish(() => void (connacks[rc] = (connacks[rc] ?? 0) + 1))
  })
  socket.on("error", () => finish(() => void errors++))
  socket.on("close", () => finish(() => void closedWithoutConnack++))
}

// paced like the latency publisher: every ~1 ms open what is due so far
const tick = (): void => {
  if (!running) return
  const due = Math.floor(((performance.now() - t0) / 1000) * rate) - attempted - skipped
  for (let i = 0; i < due; i++) openOne()
  setTimeout(tick, 1)
}

process.on("message", (m) => {
  if (m === "start" && !running) {
    running = true
    t0 = performance.now()
    tick()
  } else if (m === "stop" && running) {
    running = false
    wallMs = performance.now() - t0
    const report = (): void =>
      send({ stopped: { attempted, connacks, closedWithoutConnack, timeouts, errors, skipped, wallMs } })
    if (open === 0) report()
    else stopWaiter = report
  }
})
process.on("disconnect", () => process.exit(0))
send({ ready: true })
