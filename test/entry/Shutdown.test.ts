import { afterEach, beforeEach, describe, expect, it, vi } from "@effect/vitest"
import * as Shutdown from "../../src/entry/Shutdown.ts"

/** A process stand-in: signals are raised by the test, exits and lines recorded. */
const fakeHost = () => {
  const listeners = new Map<string, Array<() => void>>()
  const exits: Array<number> = []
  const lines: Array<string> = []
  const host: Shutdown.Host = {
    on: (signal, listener) => void listeners.set(signal, [...(listeners.get(signal) ?? []), listener]),
    exit: (code) => void exits.push(code),
    writeLine: (line) => void lines.push(line),
    now: () => Date.now()
  }
  const raise = (signal: string) => listeners.get(signal)?.forEach((listener) => listener())
  return { host, raise, exits, lines }
}

describe("Shutdown", () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it("a first signal leaves the shutdown to the runtime: no exit within the grace period", () => {
    const fake = fakeHost()
    Shutdown.install({ program: "p", graceMs: 1000, host: fake.host })
    fake.raise("SIGTERM")
    vi.advanceTimersByTime(999)
    expect(fake.exits).toEqual([])
  })

  it("a second signal exits at once with 128 + its number", () => {
    const fake = fakeHost()
    Shutdown.install({ program: "p", graceMs: 5000, host: fake.host })
    fake.raise("SIGINT")
    vi.advanceTimersByTime(Shutdown.REPEAT_MS)
    fake.raise("SIGINT")
    expect(fake.exits).toEqual([130])
    expect(fake.lines).toEqual(["p: SIGINT while stopping: exiting without finishing shutdown"])
  })

  it("the same signal delivered twice at once (npm forwarding Ctrl-C, systemd) is one request", () => {
    const fake = fakeHost()
    Shutdown.install({ program: "p", graceMs: 5000, host: fake.host })
    fake.raise("SIGTERM")
    vi.advanceTimersByTime(Shutdown.REPEAT_MS - 1)
    fake.raise("SIGTERM")
    expect(fake.exits).toEqual([])
  })

  it("a shutdown outliving the grace period is ended with one line", () => {
    const fake = fakeHost()
    Shutdown.install({ program: "p", graceMs: 1000, host: fake.host })
    fake.raise("SIGTERM")
    vi.advanceTimersByTime(1000)
    expect(fake.exits).toEqual([143])
    expect(fake.lines).toEqual(["p: shutdown did not finish within 1000 ms: exiting"])
  })
})
