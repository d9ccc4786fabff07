/**
 * Mosquitto 2 password files, so one file serves both brokers and `mosquitto_passwd` manages
 * ours: one `user:hash` line per user, `#` comments and blank lines ignored. Two hash formats:
 *
 * - `$7$iterations$salt$hash` — PBKDF2-HMAC-SHA512, 64-byte key, salt and key in base64
 *   (what `mosquitto_passwd` writes since 2.0: 101 iterations, 12-byte random salt);
 * - `$6$salt$hash` — SHA-512 of the password bytes followed by the salt (Mosquitto ≤ 1.6).
 *
 * Parsing and formatting are pure; hashing and verifying are Effects because PBKDF2 runs on
 * libuv's thread pool (async `crypto.pbkdf2`), off the event loop, and the final comparison is
 * `timingSafeEqual`, so a guess's timing says nothing about how close it was.
 */
import { Effect, Result, Schema } from "effect"
import * as Crypto from "node:crypto"

/** `mosquitto_passwd`'s iteration count for `$7$` since Mosquitto 2.0. */
export const DEFAULT_ITERATIONS = 101
/** `mosquitto_passwd`'s salt length in bytes. */
export const SALT_BYTES = 12
/** Length of both hashes in bytes (SHA-512's output; Mosquitto's PBKDF2 key length). */
const HASH_BYTES = 64

/** A stored password hash. */
export type PasswordHash =
  | { readonly _tag: "Pbkdf2Sha512"; readonly iterations: number; readonly salt: Uint8Array; readonly hash: Uint8Array }
  | { readonly _tag: "Sha512"; readonly salt: Uint8Array; readonly hash: Uint8Array }

/** One user of the file. */
export interface Entry {
  readonly username: string
  readonly hash: PasswordHash
}

/** A line of the file that is not a user, a comment or blank; `line` counts from 1. */
export class PasswordFileError extends Schema.TaggedError<PasswordFileError>()("PasswordFileError", {
  line: Schema.Number,
  problem: Schema.String
}) {
  override get message(): string {
    return `line ${this.line}: ${this.problem}`
  }
}

// strict base64: Buffer.from(…, "base64") would skip stray characters and accept a damaged line
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

const decodeBase64 = (text: string): Uint8Array | undefined =>
  BASE64.test(text) && text.length % 4 === 0 ? Buffer.from(text, "base64") : undefined

/** The hash part of a line (after `user:`), or why it is not one. */
export const parseHash = (text: string): PasswordHash | string => {
  const parts = text.split("$")
  if (parts[0] !== "") return "not a hashed password (plain-text passwords are not accepted: hash them with `passwd`)"
  if (parts[1] === "7") {
    if (parts.length !== 5) return "a $7$ hash is $7$iterations$salt$hash"
    if (!/^[1-9]\d*$/.test(parts[2]!) || Number(parts[2]) > 0x7fff_ffff) return `iterations ${JSON.stringify(parts[2])} is not a positive integer`
    const salt = decodeBase64(parts[3]!)
    const hash = decodeBase64(parts[4]!)
    if (salt === undefined) return "the salt is not base64"
    if (hash === undefined || hash.length !== HASH_BYTES) return `the hash is not ${HASH_BYTES} bytes of base64`
    return { _tag: "Pbkdf2Sha512", iterations: Number(parts[2]), salt, hash }
  }
  if (parts[1] === "6") {
    if (parts.length !== 4) return "a $6$ hash is $6$salt$hash"
    const salt = decodeBase64(parts[2]!)
    const hash = decodeBase64(parts[3]!)
    if (salt === undefined) return "the salt is not base64"
    if (hash === undefined || hash.length !== HASH_BYTES) return `the hash is not ${HASH_BYTES} bytes of base64`
    return { _tag: "Sha512", salt, hash }
  }
  return `unknown hash type $${parts[1] ?? ""}$ (known: $6$, $7$)`
}

/** What a line holds: a user, or nothing (a comment or blank line). */
const parseLine = (raw: string, line: number): Entry | undefined | PasswordFileError => {
  const text = raw.trim()
  if (text === "" || text.startsWith("#")) return undefined
  const colon = text.indexOf(":")
  if (colon <= 0) return new PasswordFileError({ line, problem: "expected user:hash" })
  const hash = parseHash(text.slice(colon + 1))
  if (typeof hash === "string") return new PasswordFileError({ line, problem: hash })
  return { username: text.slice(0, colon), hash }
}

/** Every user of a file's text, or the first bad line (a user listed twice is one: which hash would hold?). */
export const parse = (text: string): Result.Result<ReadonlyArray<Entry>, PasswordFileError> => {
  const entries: Array<Entry> = []
  const seen = new Set<string>()
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const entry = parseLine(raw, index + 1)
    if (entry === undefined) continue
    if (entry instanceof PasswordFileError) return Result.fail(entry)
    if (seen.has(entry.username)) return Result.fail(new PasswordFileError({ line: index + 1, problem: `user ${JSON.stringify(entry.username)} is listed twice` }))
    seen.add(entry.username)
    entries.push(entry)
  }
  return Result.succeed(entries)
}

/** A hash as Mosquitto writes it. */
export const formatHash = (hash: PasswordHash): string => {
  const salt = Buffer.from(hash.salt).toString("base64")
  const digest = Buffer.from(hash.hash).toString("base64")
  return hash._tag === "Pbkdf2Sha512" ? `$7$${hash.iterations}$${salt}$${digest}` : `$6$${salt}$${digest}`
}

/** One line of the file (without its newline). */
export const formatEntry = (entry: Entry): string => `${entry.username}:${formatHash(entry.hash)}`

/** Whether a user name can be written to the file (Mosquitto refuses `:` in it; a newline would split the line). */
export const isValidUsername = (username: string): boolean => username.length > 0 && !/[:\r\n]/.test(username)

const userOf = (raw: string): string | undefined => {
  const text = raw.trim()
  if (text === "" || text.startsWith("#")) return undefined
  const colon = text.indexOf(":")
  return colon <= 0 ? undefined : text.slice(0, colon)
}

/**
 * The file's text with `entry` set: its user's line replaced in place, or appended. Every other
 * line (comments included) is kept as it was, as `mosquitto_passwd` does.
 */
export const upsert = (text: string, entry: Entry): string => {
  const lines = text === "" ? [] : text.replace(/\r?\n$/, "").split(/\r?\n/)
  const index = lines.findIndex((line) => userOf(line) === entry.username)
  if (index >= 0) lines[index] = formatEntry(entry)
  else lines.push(formatEntry(entry))
  return `${lines.join("\n")}\n`
}

/** The file's text without `username`'s line, and whether there was one. */
export const remove = (text: string, username: string): { readonly text: string; readonly removed: boolean } => {
  const lines = text === "" ? [] : text.replace(/\r?\n$/, "").split(/\r?\n/)
  const kept = lines.filter((line) => userOf(line) !== username)
  return { text: kept.length === 0 ? "" : `${kept.join("\n")}\n`, removed: kept.length !== lines.length }
}

const pbkdf2 = (password: Uint8Array, salt: Uint8Array, iterations: number): Effect.Effect<Uint8Array> =>
  Effect.callback<Uint8Array>((resume) => {
    Crypto.pbkdf2(password, salt, iterations, HASH_BYTES, "sha512", (error, key) => {
      // only bad arguments make pbkdf2 fail, and parseHash admits none: a defect
      resume(error === null ? Effect.succeed(key) : Effect.die(error))
    })
  })

/** The hash of `password` under `hash`'s algorithm, salt and iterations. */
const digest = (hash: PasswordHash, password: Uint8Array): Effect.Effect<Uint8Array> =>
  hash._tag === "Pbkdf2Sha512"
    ? pbkdf2(password, hash.salt, hash.iterations)
    : Effect.sync(() => Crypto.createHash("sha512").update(password).update(hash.salt).digest())

/** Whether `password` matches `hash`, compared in constant time. */
export const verify = (hash: PasswordHash, password: Uint8Array): Effect.Effect<boolean> =>
  Effect.map(digest(hash, password), (computed) => computed.length === hash.hash.length && Crypto.timingSafeEqual(computed, hash.hash))

/** A new `$7$` hash of `password` as `mosquitto_passwd` makes it: 101 iterations and a random 12-byte salt unless given. */
export const hash = (
  password: Uint8Array,
  options: { readonly iterations?: number; readonly salt?: Uint8Array } = {}
): Effect.Effect<PasswordHash> => {
  const iterations = options.iterations ?? DEFAULT_ITERATIONS
  return Effect.flatMap(
    Effect.sync(() => options.salt ?? Crypto.randomBytes(SALT_BYTES)),
    (salt) => Effect.map(pbkdf2(password, salt, iterations), (key) => ({ _tag: "Pbkdf2Sha512" as const, iterations, salt, hash: key }))
  )
}
