/**
 * The large-packets scenario's big publisher, in its own process: writing
 * 16 MB into a socket costs its writer milliseconds of memcpy per chunk, and in
 * the harness's process that would delay the probes' round trips whatever the
 * broker does. Started with `fork` (IPC channel):
 *
 *   node bench/peers/big-publisher.ts --port P --bytes N --topic T
 *
 * Parent → child: "start", "stop". Child → parent: { ready }, { puback: ms }
 * per acknowledged message, { stopped: { sent, acked } } once the message in
 * progress is acknowledged after "stop". Exits when the IPC channel closes.
 */
import { RawClient } from "../lib/client.ts"
import { bigPublish } from "../lib/wire.ts"

/** What the child reports to the harness. */
export type BigPublisherReport =
  | { readonly ready: true }
  | { readonly puback: number }
  | { readonly stopped: { readonly sent: number; readonly acked: number } }
  | { readonly error: string }

const arg = (name: string): string => {
  const i = process.argv.indexOf(name)
  const v = i >= 0 ? process.argv[i + 1] : undefined
  if (v === undefined) {
    process.stderr.write("usage: big-publisher.ts --port P --bytes N --topic T\n")
    process.exit(2)
  }
  return v
}

const send = (m: BigPublisherReport): void => void process.send?.(m)

const main = async (): Promise<void> => {
  const port = Number(arg("--port"))
  const packet = bigPublish(arg("--topic"), Number(arg("--bytes")))
  const { client } = await RawClient.connect(port, { clientId: `bigpub${process.pid}`, clean: true, keepalive: 0 })
  let running = false
  let sent = 0
  let acked = 0
  let id = 0
  let t0 = 0
  const next = (): void => {
    if (!running || client.closed) {
      send({ stopped: { sent, acked } })
      return
    }
    id = id === 65535 ? 1 : id + 1
    // safe to patch the shared buffer: the previous PUBLISH was acknowledged, so fully written
    packet.bytes.writeUInt16BE(id, packet.idOffset)
    sent++
    t0 = performance.now()
    client.write(packet.bytes)
  }
  client.pubackHook = (ack) => {
    if (ack !== id) return
    acked++
    send({ puback: performance.now() - t0 })
    next()
  }
  client.closeHook = () => {
    send({ error: `connection closed by the broker after ${acked} of ${sent} PUBACKs` })
    send({ stopped: { sent, acked } })
  }
  process.on("message", (m) => {
    if (m === "start" && !running) {
      running = true
      next()
    } else if (m === "stop") {
      running = false
      // nothing in flight: report now; else the next PUBACK reports
      if (acked === sent) send({ stopped: { sent, acked } })
    }
  })
  process.on("disconnect", () => process.exit(0))
  send({ ready: true })
}

main().catch((e: unknown) => {
  send({ error: e instanceof Error ? e.message : String(e) })
  process.exit(1)
})
