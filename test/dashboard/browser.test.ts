/**
 * The live page in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
 * served by a real broker on its metrics port, connected back over MQTT-over-WebSocket. A message
 * published by mqtt.js in Node shows in the page's explorer, one published from the page reaches
 * a Node subscriber, and the client count shown is the broker's. Takes a screenshot; with
 * DASHBOARD_SCREENSHOT=1 it is `docs/dashboard.png`, which the README shows. Without Chromium the test fails, saying how to install it.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import mqtt from "mqtt"
import { type Browser, chromium, type Page } from "playwright-core"
import { startTestBroker, type TestBroker } from "../support/TestBroker.ts"

/** README's picture with DASHBOARD_SCREENSHOT=1; otherwise a temporary file, so a test run leaves the tree clean. */
const SCREENSHOT = process.env["DASHBOARD_SCREENSHOT"] === "1"
  ? fileURLToPath(new URL("../../docs/dashboard.png", import.meta.url))
  : join(mkdtempSync(join(tmpdir(), "dashboard-")), "dashboard.png")

/** Debian's Chromium (or CHROMIUM_PATH); the test fails, saying how to get it, without one. */
const chromiumPath = (): string => {
  const candidates = [process.env["CHROMIUM_PATH"], "/usr/bin/chromium", "/usr/bin/chromium-browser"]
  const found = candidates.find((path) => path !== undefined && existsSync(path))
  if (found === undefined) {
    throw new Error("Chromium not found: apt-get install -y chromium (.ci/run does), or set CHROMIUM_PATH")
  }
  return found
}

let broker: TestBroker
let browser: Browser
let page: Page
const clients: Array<mqtt.MqttClient> = []

beforeAll(async () => {
  broker = await startTestBroker({ webSocket: { port: 0, host: "127.0.0.1" }, metrics: { port: 0, host: "127.0.0.1" }, sysInterval: 1 })
  // as root in a container Chromium's sandbox cannot start
  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: ["--no-sandbox"] })
  page = await browser.newPage({ viewport: { width: 1100, height: 760 } })
}, 30_000)

afterAll(async () => {
  await Promise.all(clients.map((client) => client.endAsync(true)))
  await browser?.close()
  await broker?.stop()
})

const text = (selector: string) => page.locator(selector).textContent()

describe("the live page in headless Chromium", () => {
  it("connects back over WebSocket, shows the broker's client count, and its explorer sends and receives messages", { timeout: 60_000 }, async () => {
    const metrics = broker.metricsAddress!
    await page.goto(`http://127.0.0.1:${metrics.port}/`)
    await expect.poll(() => text("#status"), { timeout: 10_000 }).toBe("connected")

    // two Node clients besides the page: the broker counts three, and so must the page
    const subscriber = await mqtt.connectAsync(broker.url, { clientId: "node-subscriber" })
    const publisher = await mqtt.connectAsync(broker.url, { clientId: "node-publisher" })
    clients.push(subscriber, publisher)
    await expect.poll(() => text("#clients"), { timeout: 10_000 }).toBe("3")

    // Node → page: the explorer subscribes to a filter and shows what matches
    await page.fill("#filter", "to/page/#")
    await page.click("#subscribe button")
    await expect.poll(() => text("#subscribed"), { timeout: 10_000 }).toBe("subscribed to to/page/#")
    await publisher.publishAsync("to/page/greeting", "hello browser")
    await page.locator("#messages tr", { hasText: "hello browser" }).waitFor({ timeout: 10_000 })
    expect(await text("#messages tr:first-child td.topic")).toBe("to/page/greeting")

    // page → Node
    await subscriber.subscribeAsync("from/page")
    const received = new Promise<string>((resolve) => subscriber.once("message", (_topic, payload) => resolve(payload.toString())))
    await page.fill("#publish-topic", "from/page")
    await page.fill("#publish-payload", "hello node")
    await page.click("#publish button")
    expect(await received).toBe("hello node")

    // the figures the page shows come from $SYS: rates once two rounds have arrived; some
    // traffic for the chart in the screenshot
    const traffic = setInterval(() => void publisher.publish("load/sample", "x"), 20)
    await expect.poll(() => text("#rate-in"), { timeout: 10_000 }).not.toBe("–")
    await new Promise((resolve) => setTimeout(resolve, 4_000))
    clearInterval(traffic)
    expect(Number(await text("#rate-in"))).toBeGreaterThan(10)
    expect(await text("#version")).toMatch(/^effect-mqtt-broker version /)
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    // a PNG of the whole page
    expect(readFileSync(SCREENSHOT).subarray(1, 4).toString()).toBe("PNG")
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000)
  })
})
