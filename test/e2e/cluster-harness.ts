/**
 * Two broker processes in one cluster (`--persistence redis --cluster`, heartbeat 200 ms) on a
 * real redis-server started for the test file, and the waiting helpers the cluster tests share.
 */
import { afterAll, beforeAll } from "@effect/vitest"
import type { MqttClient } from "mqtt"
import * as RedisServer from "../support/RedisServer.ts"
import { type BrokerProcess, startBroker } from "./persistence-harness.ts"

/** Milliseconds between heartbeats of the test nodes. */
export const HEARTBEAT_MS = 200

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves once `check` holds, polling; rejects after `timeoutMs`, with `context()` in the message. */
export const until = async (what: string, check: () => boolean, timeoutMs = 10_000, context: () => string = () => ""): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${context()}`)
    await sleep(10)
  }
}

/**
 * Nodes A and B, started before the file's tests and killed after them, with the MQTT clients
 * the tests opened (`clients`, ended first).
 */
export const useTwoNodes = () => {
  const redisUrl = RedisServer.useRedisServer()
  const nodes: { a?: BrokerProcess; b?: BrokerProcess } = {}
  const clients: Array<MqttClient> = []
  beforeAll(async () => {
    const args = ["--persistence", "redis", "--redis-url", redisUrl(), "--cluster", "--cluster-heartbeat-ms", String(HEARTBEAT_MS)]
    ;[nodes.a, nodes.b] = await Promise.all([startBroker(args, 30_000), startBroker(args, 30_000)])
  }, 60_000)
  afterAll(async () => {
    for (const c of clients.splice(0)) c.end(true)
    await Promise.all([nodes.a?.kill9(), nodes.b?.kill9()])
  })
  return {
    a: (): BrokerProcess => nodes.a!,
    b: (): BrokerProcess => nodes.b!,
    clients
  }
}
