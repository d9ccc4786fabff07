/**
 * An `Authenticator` backed by a Mosquitto 2 password file (`PasswordFile`): the file is read
 * when the Layer is built, so a missing or damaged file stops the broker before it listens
 * instead of refusing every client later, and again on SIGHUP (a damaged file then keeps the
 * users in force, as Mosquitto does). As in Mosquitto 2 (`password_file`, `allow_anonymous`):
 * an unknown user or a wrong password is refused as bad credentials, a client without a user
 * name as not authorized unless anonymous access is allowed.
 */
import { Effect, Layer, Result, Schema } from "effect"
import { readFile } from "node:fs/promises"
import * as Authenticator from "./Authenticator.ts"
import { onHangup } from "./Hangup.ts"
import * as PasswordFile from "./PasswordFile.ts"
import { describeFileProblem } from "../config/FileProblem.ts"

/** The password file could not be used: unreadable, or a line that is not `user:hash`. */
export class PasswordFileLoadError extends Schema.TaggedError<PasswordFileLoadError>()("PasswordFileLoadError", {
  path: Schema.String,
  problem: Schema.String
}) {
  override get message(): string {
    return `password file ${this.path}: ${this.problem}`
  }
}

/** How the authenticator treats clients that send no user name. */
export interface Options {
  /** Accept clients without a user name (as anonymous); otherwise CONNACK 5 / 0x87. */
  readonly allowAnonymous: boolean
}


/** Reads and parses the file at `path`. */
export const load = (path: string): Effect.Effect<ReadonlyArray<PasswordFile.Entry>, PasswordFileLoadError> =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) => new PasswordFileLoadError({ path, problem: `cannot be read: ${describeFileProblem(cause)}` })
  }).pipe(
    Effect.flatMap((text) =>
      Result.match(PasswordFile.parse(text), {
        onFailure: (error) => Effect.fail(new PasswordFileLoadError({ path, problem: error.message })),
        onSuccess: Effect.succeed
      })
    )
  )

/**
 * An unknown user's password is still hashed (against this fixed hash, salt of zeros), so a
 * refusal takes as long whether or not the user exists: timing does not list the users.
 */
const decoy: PasswordFile.PasswordHash = {
  _tag: "Pbkdf2Sha512",
  iterations: PasswordFile.DEFAULT_ITERATIONS,
  salt: new Uint8Array(PasswordFile.SALT_BYTES),
  hash: new Uint8Array(64)
}

const refused = (reason: Authenticator.AuthenticationRefusedReason) => Effect.fail(new Authenticator.AuthenticationRefused({ reason }))

/** An authenticator over the users of a parsed password file. */
export const make = (entries: ReadonlyArray<PasswordFile.Entry>, options: Options): Authenticator.Authenticator["Service"] =>
  makeReloadable(entries, options).authenticator

/** An authenticator and the way to replace its users (what SIGHUP does with a re-read file). */
export interface ReloadableAuthenticator {
  readonly authenticator: Authenticator.Authenticator["Service"]
  /** Later CONNECTs are checked against these users; connected clients stay connected. */
  readonly replace: (entries: ReadonlyArray<PasswordFile.Entry>) => void
}

const usersOf = (entries: ReadonlyArray<PasswordFile.Entry>) => new Map(entries.map((entry) => [entry.username, entry.hash]))

/** `make`, with the users replaceable. */
export const makeReloadable = (entries: ReadonlyArray<PasswordFile.Entry>, options: Options): ReloadableAuthenticator => {
  // a plain variable: each CONNECT reads it once, a reload swaps one immutable map
  let users = usersOf(entries)
  const authenticator = Authenticator.make(Effect.fnUntraced(function*(request) {
    // a verified certificate's CN needs no password (--use-identity-as-username, as Mosquitto)
    if (request.certified === true && request.username !== undefined) return { username: request.username }
    if (request.username === undefined) {
      if (options.allowAnonymous) return { username: undefined }
      return yield* refused(new Authenticator.NotAuthorized())
    }
    const hash = users.get(request.username)
    const matches = yield* PasswordFile.verify(hash ?? decoy, request.password ?? new Uint8Array(0))
    // a user without a password in CONNECT is refused even if an empty password would match
    if (hash === undefined || request.password === undefined || !matches) return yield* refused(new Authenticator.BadCredentials())
    return { username: request.username }
  }))
  return {
    authenticator,
    replace: (entries) => {
      users = usersOf(entries)
    }
  }
}

/** Reads the file again and replaces the users if it loads; otherwise logs why and keeps them (as Mosquitto). */
export const reloadLogged = (path: string, handle: ReloadableAuthenticator): Effect.Effect<void> =>
  load(path).pipe(
    Effect.flatMap((entries) => Effect.andThen(Effect.sync(() => handle.replace(entries)), Effect.logInfo(`password file ${path} reloaded`))),
    Effect.catch((error) => Effect.logError(`${error.message}; keeping the users in force`))
  )

/**
 * The authenticator of the password file at `path`: read when the Layer is built (a bad file
 * stops the broker before it listens) and again on SIGHUP for as long as the Layer lives.
 */
export const layer = (path: string, options: Options): Layer.Layer<Authenticator.Authenticator, PasswordFileLoadError> =>
  Layer.effect(
    Authenticator.Authenticator,
    Effect.gen(function*() {
      const handle = makeReloadable(yield* load(path), options)
      yield* onHangup(reloadLogged(path, handle))
      return handle.authenticator
    })
  )
