/**
 * Runs one hostile case on its own fresh connection and records what the broker did: the
 * packets it sent after the bad bytes, and whether and when it closed the connection.
 */
import type { Observation } from "./Answers.ts"
import type { Case } from "./Classes.ts"
import { RawConnection } from "./Raw.ts"
import * as Wire from "./Wire.ts"

/** The will topic a post-CONNECT probe with `will` registers (the campaign watches `fuzz/will/#`). */
export const willTopicOf = (clientId: string): string => `fuzz/will/${clientId}`

/** How long the valid CONNECT before a post-CONNECT case may take. */
const SETUP_TIMEOUT_MS = 5000

/**
 * Sends `c` as client `clientId`; `onSent` runs as soon as the bad bytes are handed to the socket
 * (the campaign starts an innocent client then, to race the bad connection's aftermath).
 */
export async function probe(port: number, c: Case, clientId: string, onSent: () => void = () => {}): Promise<Observation> {
  let connection: RawConnection
  try {
    connection = await RawConnection.open(port, c.version, SETUP_TIMEOUT_MS)
  } catch (error) {
    onSent()
    return { setupError: (error as Error).message, packets: [], closed: false, stayedUp: false, waitedMs: 0 }
  }
  try {
    if (c.connectFirst !== undefined) {
      const will = c.connectFirst.will ? { topic: willTopicOf(clientId), payload: Buffer.from("will"), qos: 1, retain: false } : undefined
      await connection.write(Wire.connect({ version: c.version, clientId, ...(will === undefined ? {} : { will }) }))
      const accepted = await connection.waitFor(() => connection.packets.length > 0, SETUP_TIMEOUT_MS)
      const first = connection.packets[0]
      if (!accepted || first?.type !== 2 || first.code !== 0) {
        onSent()
        return {
          setupError: `valid CONNECT answered ${first === undefined ? "with nothing" : Wire.describePacket(first)}${connection.closed ? ", closed" : ""}`,
          packets: [],
          closed: connection.closed,
          stayedUp: false,
          waitedMs: 0
        }
      }
    }
    const before = connection.packets.length
    const after = () => connection.packets.slice(before)
    const sentAt = Date.now()
    // not awaited: a large write must not delay the innocent client, nor the close timer
    void connection.write(c.bytes)
    onSent()
    if (c.endAfterSend === true) connection.end()

    let stayedUp = false
    const replyTypes = c.replyTypes
    if (replyTypes !== undefined) {
      const replied = await connection.waitFor(() => after().some((p) => replyTypes.includes(p.type)), c.waitMs)
      if (replied && !connection.closed) {
        // the answer came and the connection looks up: prove it with a PINGREQ
        const pings = after().filter((p) => p.type === 13).length
        await connection.write(Wire.PINGREQ)
        stayedUp = await connection.waitFor(() => after().filter((p) => p.type === 13).length > pings, c.waitMs)
        stayedUp &&= !connection.closed
      }
    } else {
      await connection.waitClosed(c.waitMs)
    }
    // a late packet racing the close is still part of the answer
    if (connection.closed) await new Promise((resolve) => setImmediate(resolve))
    const observation: Observation = {
      packets: after(),
      closed: connection.closed,
      ...(connection.closedAt !== undefined ? { closedAfterMs: connection.closedAt - sentAt } : {}),
      stayedUp,
      waitedMs: Date.now() - sentAt,
      ...(connection.undecodable !== undefined ? { undecodable: connection.undecodable } : {})
    }
    return observation
  } finally {
    connection.destroy()
  }
}
