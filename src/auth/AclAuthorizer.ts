/**
 * The `Authorizer` backend for a Mosquitto `acl_file` (`--acl-file`, see `AclFile.ts` for the
 * syntax). The file is read when the Layer is built — a missing or bad file fails it with an
 * `AclFileError` naming the line, before anything listens — and read again on SIGHUP, as
 * Mosquitto does: connections stay up and the next check uses the new rules; a file that has
 * become bad is logged and the rules in force are kept.
 */
import { Effect, Layer, Result, Schema } from "effect"
import { readFile } from "node:fs/promises"
import { type Acl, check, parse } from "./AclFile.ts"
import { Authorizer, make } from "./Authorizer.ts"
import { onHangup } from "./Hangup.ts"

/** An ACL file the broker cannot use: unreadable, or a line that is not ACL syntax. */
export class AclFileError extends Schema.TaggedError<AclFileError>()("AclFileError", {
  path: Schema.String,
  reason: Schema.Literals(["unreadable", "invalid"]),
  /** The 1-based line of an `invalid` file. */
  line: Schema.optional(Schema.Number),
  detail: Schema.String
}) {
  override get message(): string {
    return this.line === undefined
      ? `ACL file ${this.path}: ${this.detail}`
      : `ACL file ${this.path} line ${this.line}: ${this.detail}`
  }
}

/** Reads and parses the ACL file at `path`. */
export const read = (path: string): Effect.Effect<Acl, AclFileError> =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) =>
      new AclFileError({
        path,
        reason: "unreadable",
        detail: `cannot be read (${(cause as NodeJS.ErrnoException).code ?? String(cause)})`
      })
  }).pipe(
    Effect.flatMap((text) => {
      const parsed = parse(text)
      return Result.isSuccess(parsed)
        ? Effect.succeed(parsed.success)
        : Effect.fail(new AclFileError({ path, reason: "invalid", line: parsed.failure.line, detail: parsed.failure.reason }))
    })
  )

/** An ACL authorizer and the way to reload its file. */
export interface AclAuthorizer {
  readonly authorizer: Authorizer["Service"]
  /**
   * Reads the file again and, if it parses, answers every later check with its rules; a bad
   * file fails with its error and leaves the rules in force untouched.
   */
  readonly reload: Effect.Effect<void, AclFileError>
}

/** Reads the file at `path` once and builds an authorizer over it. */
export const load = Effect.fnUntraced(function*(path: string) {
  // a plain variable, not a Ref: checks run per message and a reload swaps one immutable value
  let rules = yield* read(path)
  const handle: AclAuthorizer = {
    authorizer: make((request) => Effect.sync(() => check(rules, request))),
    reload: Effect.map(read(path), (fresh) => {
      rules = fresh
    })
  }
  return handle
})

/** `reload`, logged: what SIGHUP runs. */
export const reloadLogged = (path: string, handle: AclAuthorizer): Effect.Effect<void> =>
  handle.reload.pipe(
    Effect.flatMap(() => Effect.logInfo(`ACL file ${path} reloaded`)),
    Effect.catch((error) => Effect.logError(`${error.message}; keeping the rules in force`))
  )

/**
 * The `Authorizer` from the ACL file at `path`, reloaded on SIGHUP for as long as the Layer
 * lives (the signal handler is removed with it).
 */
export const layer = (path: string): Layer.Layer<Authorizer, AclFileError> =>
  Layer.effect(
    Authorizer,
    Effect.gen(function*() {
      const handle = yield* load(path)
      yield* Effect.logInfo(`ACL file ${path} loaded`)
      yield* onHangup(reloadLogged(path, handle))
      return handle.authorizer
    })
  )
