import { describe, expect, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { execFileSync } from "node:child_process"
import * as Crypto from "node:crypto"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { vi } from "vitest"
import * as PasswordFile from "../../src/auth/PasswordFile.ts"

// spy on the comparison verify must use: a plain `===`/`Buffer.equals` would leak timing
vi.mock("node:crypto", async (importOriginal) => {
  const original = await importOriginal<typeof import("node:crypto")>()
  return { ...original, timingSafeEqual: vi.fn(original.timingSafeEqual) }
})

const bytes = (text: string) => Buffer.from(text, "utf8")

/** Runs Debian's `mosquitto_passwd`; fails the test, saying so, when it is not installed. */
const mosquittoPasswd = (...args: Array<string>): void => {
  try {
    execFileSync("mosquitto_passwd", args, { stdio: "pipe" })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error("mosquitto_passwd not found: install it (apt-get install -y mosquitto), .ci/run does")
    }
    throw error
  }
}

const entriesOf = (text: string): ReadonlyArray<PasswordFile.Entry> => {
  const parsed = PasswordFile.parse(text)
  if (Result.isFailure(parsed)) throw new Error(parsed.failure.message)
  return parsed.success
}

const problemOf = (text: string): string => {
  const parsed = PasswordFile.parse(text)
  if (Result.isSuccess(parsed)) throw new Error("parsed")
  return parsed.failure.message
}

describe("PasswordFile", () => {
  it.effect("verifies $7$ and $6$ lines written by Debian's mosquitto_passwd, and refuses wrong passwords", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "pwfile-"))
      const file = join(dir, "passwd")
      mosquittoPasswd("-b", "-c", file, "alice", "s3cret ü")
      mosquittoPasswd("-H", "sha512", "-b", file, "bob", "hunter2")
      const entries = entriesOf(readFileSync(file, "utf8"))
      expect(entries.map((entry) => entry.username)).toEqual(["alice", "bob"])
      const [alice, bob] = entries as [PasswordFile.Entry, PasswordFile.Entry]
      expect(alice.hash._tag).toBe("Pbkdf2Sha512")
      if (alice.hash._tag === "Pbkdf2Sha512") expect(alice.hash.iterations).toBe(PasswordFile.DEFAULT_ITERATIONS)
      expect(alice.hash.salt.length).toBe(PasswordFile.SALT_BYTES)
      expect(bob.hash._tag).toBe("Sha512")
      expect(yield* PasswordFile.verify(alice.hash, bytes("s3cret ü"))).toBe(true)
      expect(yield* PasswordFile.verify(alice.hash, bytes("s3cret u"))).toBe(false)
      expect(yield* PasswordFile.verify(alice.hash, bytes(""))).toBe(false)
      expect(yield* PasswordFile.verify(bob.hash, bytes("hunter2"))).toBe(true)
      expect(yield* PasswordFile.verify(bob.hash, bytes("hunter3"))).toBe(false)
      // the lines we format from what we parsed are the lines Mosquitto wrote
      expect(entries.map(PasswordFile.formatEntry).join("\n") + "\n").toBe(readFileSync(file, "utf8"))
    }))

  it.effect("compares in constant time", () =>
    Effect.gen(function*() {
      const spy = vi.mocked(Crypto.timingSafeEqual)
      spy.mockClear()
      const hash = yield* PasswordFile.hash(bytes("pw"))
      expect(yield* PasswordFile.verify(hash, bytes("nope"))).toBe(false)
      expect(yield* PasswordFile.verify(hash, bytes("pw"))).toBe(true)
      expect(spy).toHaveBeenCalledTimes(2)
    }))

  it.effect("hashes as mosquitto_passwd does: $7$, 101 iterations, a fresh 12-byte salt", () =>
    Effect.gen(function*() {
      const first = yield* PasswordFile.hash(bytes("pw"))
      const second = yield* PasswordFile.hash(bytes("pw"))
      const line = PasswordFile.formatEntry({ username: "carol", hash: first })
      expect(line).toMatch(/^carol:\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/)
      expect(Buffer.from(first.salt).equals(Buffer.from(second.salt))).toBe(false)
      // parsed back, it verifies; and Node's own PBKDF2 agrees with it (64-byte key, SHA-512)
      const [parsed] = entriesOf(line) as [PasswordFile.Entry]
      expect(yield* PasswordFile.verify(parsed.hash, bytes("pw"))).toBe(true)
      expect(Buffer.from(parsed.hash.hash).equals(Crypto.pbkdf2Sync("pw", first.salt, 101, 64, "sha512"))).toBe(true)
    }))

  it("skips comments and blank lines, names the bad line", () => {
    const good = PasswordFile.formatEntry({ username: "a", hash: { _tag: "Sha512", salt: Buffer.alloc(12, 1), hash: Buffer.alloc(64, 2) } })
    expect(entriesOf(`# users\n\n  ${good}  \r\n`).map((entry) => entry.username)).toEqual(["a"])
    expect(problemOf(`${good}\nbob:plaintext\n`)).toMatch(/^line 2: not a hashed password/)
    expect(problemOf("nocolon\n")).toBe("line 1: expected user:hash")
    expect(problemOf("x:$5$abc$def\n")).toMatch(/unknown hash type \$5\$/)
    expect(problemOf("x:$7$0$AAAA$AAAA\n")).toMatch(/iterations "0"/)
    expect(problemOf("x:$7$101$AAAA$AAAA\n")).toMatch(/not 64 bytes/)
    expect(problemOf("x:$7$101$!!$AAAA\n")).toMatch(/salt is not base64/)
    expect(problemOf(`${good}\n${good}\n`)).toBe(`line 2: user "a" is listed twice`)
  })

  it("upsert replaces a user's line in place, keeps the rest; remove drops it", () => {
    const entry = (username: string, fill: number): PasswordFile.Entry => ({
      username,
      hash: { _tag: "Sha512", salt: Buffer.alloc(12, fill), hash: Buffer.alloc(64, fill) }
    })
    const text = `# keep me\n${PasswordFile.formatEntry(entry("a", 1))}\n${PasswordFile.formatEntry(entry("b", 2))}\n`
    const replaced = PasswordFile.upsert(text, entry("a", 3))
    expect(replaced.split("\n")).toEqual(["# keep me", PasswordFile.formatEntry(entry("a", 3)), PasswordFile.formatEntry(entry("b", 2)), ""])
    expect(PasswordFile.upsert("", entry("c", 4))).toBe(`${PasswordFile.formatEntry(entry("c", 4))}\n`)
    expect(PasswordFile.remove(replaced, "a")).toEqual({ text: `# keep me\n${PasswordFile.formatEntry(entry("b", 2))}\n`, removed: true })
    expect(PasswordFile.remove(replaced, "zz").removed).toBe(false)
    expect(PasswordFile.isValidUsername("a:b")).toBe(false)
    expect(PasswordFile.isValidUsername("alice")).toBe(true)
  })
})
