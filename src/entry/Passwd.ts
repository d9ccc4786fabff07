/**
 * `passwd`: manages a password file like Mosquitto's `mosquitto_passwd`, so the file works with
 * both brokers. `passwd [-c] FILE USER` asks for the password twice without echo, `-b FILE USER
 * PASSWORD` takes it from the command line (scripts; it shows in `ps`), `-D FILE USER` deletes the
 * user. Lines are written as `mosquitto_passwd` writes them: `$7$`, 101 iterations, a random
 * 12-byte salt; every other line of the file is kept.
 */
import { Effect, Option, Redacted, Result, Schema } from "effect"
import { Argument, Command, Flag, Prompt } from "effect/cli"
import { chmodSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import * as PasswordFile from "../auth/PasswordFile.ts"
import { describeFileProblem } from "../config/FileProblem.ts"

/** Why `passwd` did nothing; `message` is the one line the operator reads. */
export class PasswdError extends Schema.TaggedError<PasswdError>()("PasswdError", { message: Schema.String }) {}

/** What to do to which file. */
export interface Request {
  readonly file: string
  readonly username: string
  /** Start a new file (an existing one is overwritten), as `-c`. */
  readonly create: boolean
  /** Delete the user instead, as `-D`. */
  readonly remove: boolean
  /** The password when given (`-b`); otherwise it is asked for. */
  readonly password: string | undefined
}

/** A missing file is the one case where passwd can say what to do instead. */
const describe = (cause: unknown): string => {
  const problem = describeFileProblem(cause)
  return problem === "no such file" ? "no such file (-c creates one)" : problem
}

const fail = (message: string) => Effect.fail(new PasswdError({ message }))

/** The current text of the file, checked so a damaged file is not made worse. */
const readExisting = (file: string) =>
  Effect.try({
    try: () => readFileSync(file, "utf8"),
    catch: (cause) => new PasswdError({ message: `${file}: ${describe(cause)}` })
  }).pipe(
    Effect.tap((text) =>
      Result.match(PasswordFile.parse(text), {
        onFailure: (error) => fail(`${file}: ${error.message}`),
        onSuccess: () => Effect.void
      })
    )
  )

/** Writes through a temporary file and a rename: a crash leaves the old file or the new one, never half. */
const write = (file: string, text: string) =>
  Effect.try({
    try: () => {
      const temporary = `${file}.tmp-${process.pid}`
      // readable by its owner only: the hashes are what an attacker would try to crack offline
      writeFileSync(temporary, text, { mode: 0o600 })
      chmodSync(temporary, 0o600)
      renameSync(temporary, file)
    },
    catch: (cause) => new PasswdError({ message: `${file}: cannot be written: ${describe(cause)}` })
  })

/** The password, from the request or asked twice without echo. */
const passwordFor = (request: Request) =>
  Effect.gen(function*() {
    if (request.password !== undefined) return request.password
    const ask = (message: string) =>
      Prompt.run(Prompt.Hidden({ message })).pipe(
        Effect.map(Redacted.value),
        Effect.mapError(() => new PasswdError({ message: "no password given" }))
      )
    const first = yield* ask("Password:")
    const second = yield* ask("Reenter password:")
    if (first !== second) return yield* fail("the passwords do not match")
    return first
  })

/** Carries out one `passwd` request. */
export const run = Effect.fnUntraced(function*(request: Request) {
  const { file, username } = request
  if (!PasswordFile.isValidUsername(username)) return yield* fail(`user name ${JSON.stringify(username)} cannot contain ':' or a line break, nor be empty`)
  if (request.remove) {
    const removed = PasswordFile.remove(yield* readExisting(file), username)
    if (!removed.removed) return yield* fail(`${file}: no user ${JSON.stringify(username)}`)
    return yield* write(file, removed.text)
  }
  const existing = request.create ? "" : yield* readExisting(file)
  const password = yield* passwordFor(request)
  if (password === "") return yield* fail("empty password")
  const hash = yield* PasswordFile.hash(Buffer.from(password, "utf8"))
  yield* write(file, PasswordFile.upsert(existing, { username, hash }))
})

/** The `passwd` subcommand. */
export const command = Command.make(
  "passwd",
  {
    create: Flag.Boolean("create").pipe(Flag.withAlias("c"), Flag.withDefault(false), Flag.withDescription("start a new file, overwriting an existing one")),
    batch: Flag.Boolean("batch").pipe(Flag.withAlias("b"), Flag.withDefault(false), Flag.withDescription("take the password from the command line")),
    remove: Flag.Boolean("delete").pipe(Flag.withAlias("D"), Flag.withDefault(false), Flag.withDescription("delete the user")),
    file: Argument.String("file").pipe(Argument.withDescription("the password file")),
    username: Argument.String("user").pipe(Argument.withDescription("the user name")),
    password: Argument.String("password").pipe(Argument.optional, Argument.withDescription("the password (with -b only)"))
  },
  (args) =>
    Effect.gen(function*() {
      const password = Option.getOrUndefined(args.password)
      if (args.batch && password === undefined) return yield* fail("-b needs the password after the user name")
      if (!args.batch && password !== undefined) return yield* fail("a password on the command line needs -b")
      if (args.remove && (args.create || args.batch)) return yield* fail("-D deletes a user: it takes neither -c nor -b")
      yield* run({ file: args.file, username: args.username, create: args.create, remove: args.remove, password })
    })
).pipe(Command.withDescription("manage a Mosquitto-compatible password file: passwd [-c] FILE USER | -b FILE USER PASSWORD | -D FILE USER"))
