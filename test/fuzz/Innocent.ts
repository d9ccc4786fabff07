/**
 * An innocent client: connects right after a hostile one and must be served as if nothing had
 * happened — CONNACK 0 within the deadline, and (when `full`) a QoS 1 subscribe, publish and
 * delivery of its own message. Any failure makes it a victim of the hostile client before it.
 */
import { RawConnection } from "./Raw.ts"
import * as Wire from "./Wire.ts"
import type { Version } from "./Wire.ts"

/** What happened to one innocent client. */
export interface InnocentResult {
  readonly clientId: string
  readonly version: Version
  readonly full: boolean
  readonly ok: boolean
  /** From opening the TCP connection to CONNACK 0. */
  readonly connackMs: number | undefined
  /** Why it is a victim (empty when ok). */
  readonly detail: string
}

/** Connects as `clientId` (and when `full`, subscribes, publishes and receives its own message), each step within `timeoutMs`. */
export async function innocent(port: number, clientId: string, version: Version, full: boolean, timeoutMs: number): Promise<InnocentResult> {
  const started = Date.now()
  const result = (ok: boolean, detail: string, connackMs?: number): InnocentResult => ({ clientId, version, full, ok, connackMs, detail })
  let connection: RawConnection
  try {
    connection = await RawConnection.open(port, version, timeoutMs)
  } catch (error) {
    return result(false, `TCP connect failed: ${(error as Error).message}`)
  }
  const got = (type: number, test: (p: Wire.ServerPacket) => boolean = () => true) => () => connection.packets.some((p) => p.type === type && test(p))
  const seen = () => connection.packets.map(Wire.describePacket).join(", ") || "nothing"
  try {
    await connection.write(Wire.connect({ version, clientId }))
    if (!(await connection.waitFor(got(2), timeoutMs))) {
      return result(false, `no CONNACK within ${timeoutMs} ms (got ${seen()}${connection.closed ? ", closed" : ""})`)
    }
    const connackMs = Date.now() - started
    const ack = connection.packets.find((p) => p.type === 2)!
    if (ack.code !== 0) return result(false, `CONNACK ${Wire.describePacket(ack)}`, connackMs)
    if (!full) return result(true, "", connackMs)

    const topic = `fuzz/innocent/${clientId}`
    const payload = Buffer.from(`hello ${clientId}`)
    await connection.write(Wire.subscribe(version, 1, [{ filter: topic, options: 1 }]))
    if (!(await connection.waitFor(got(9, (p) => p.packetId === 1 && p.codes?.[0] === 1), timeoutMs))) {
      return result(false, `no SUBACK granting QoS 1 within ${timeoutMs} ms (got ${seen()})`, connackMs)
    }
    await connection.write(Wire.publish({ version, topic, qos: 1, packetId: 2, payload }))
    const delivered = got(3, (p) => p.topic === topic && p.payload?.equals(payload) === true)
    if (!(await connection.waitFor(() => got(4, (p) => p.packetId === 2)() && delivered(), timeoutMs))) {
      return result(false, `own QoS 1 message not acknowledged and delivered within ${timeoutMs} ms (got ${seen()})`, connackMs)
    }
    const message = connection.packets.find((p) => p.type === 3)!
    await connection.write(Wire.packet(0x40, Wire.u16(message.packetId ?? 0)))
    await connection.write(Wire.DISCONNECT)
    return result(true, "", connackMs)
  } finally {
    connection.destroy()
  }
}
