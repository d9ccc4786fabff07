/**
 * A persistent `SessionStateProvider` on SQLite (Node's built-in `node:sqlite`, nothing to
 * install): sessions and retained messages survive a restart or a `kill -9` of the broker.
 *
 * Reads are served from memory (every session is loaded at start, as the memory provider holds
 * them); every change is written through. Writes are grouped: the changes of one turn of the event
 * loop are committed together in one transaction on the next macrotask, and each `modify` that
 * changed something returns only once its transaction has committed. So whatever the broker
 * acknowledges after a `modify` (a SUBACK, a CONNACK, a PUBREC) is on disk, at one commit per turn
 * rather than one per message. Deliveries and releases use `GroupCommit.modifyDeferred` instead (a
 * client's lock is then not held across a commit) and the PUBLISH that caused them is acknowledged
 * after `GroupCommit.committed`.
 *
 * Sessions with expiry 0 (3.1.1 clean session) end with their connection: they live in memory only.
 *
 * Only the difference is written: a session's row holds everything but its queue; each queued
 * message has its own row, so enqueueing one message appends one row and draining deletes a range
 * (`MessageQueue.changesSince`), whatever the depth of the queue.
 *
 * SQLite settings: WAL journal, `synchronous=NORMAL` (a commit is a write to the WAL file, which
 * the operating system keeps when the process dies; it is fsynced at checkpoints, so power loss
 * may lose the last commits but never corrupts the file) or `FULL` (fsync at every commit: power
 * loss loses nothing acknowledged). `locking_mode=EXCLUSIVE`: a second broker on the same file is
 * refused instead of sharing it.
 */
import { Context, Effect, Layer, Option } from "effect"
import { DatabaseSync } from "node:sqlite"
import type { Message } from "../Message.ts"
import { MessageQueue } from "../MessageQueue.ts"
import * as SessionCodec from "../SessionCodec.ts"
import type { SessionState } from "../SessionState.ts"
import { SessionStateProvider, SessionStoreError, type SessionUpdate } from "../SessionStateProvider.ts"
import { GroupCommit } from "./GroupCommit.ts"
import { RetainedMessageStore } from "./RetainedMessageStore.ts"

/** How to open the store. */
export interface Options {
  /** The database file; created if absent. */
  readonly file: string
  /** `normal` (default): survives a crash of the process; `full`: also a power loss (fsync per commit). */
  readonly synchronous?: "normal" | "full" | undefined
}

/** The layout of the tables this module writes; a file with another one is refused. */
const SCHEMA_VERSION = 1

/** The file cannot be used: not a database, corrupt, locked by another broker, of another layout. */
export class PersistenceFileError extends Error {
  override readonly name = "PersistenceFileError"
  /** The database file. */
  readonly file: string
  constructor(file: string, reason: string) {
    super(`cannot use the persistence file ${file}: ${reason}`)
    this.file = file
  }
}

/** What the database holds for a session: the session as last committed, and the seq of its queue's first row. */
interface Written {
  readonly state: SessionState
  readonly base: number
}

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ").trim()

/** The fields of a session that live in its own row (everything but the queue), compared by identity. */
const sameHeader = (a: SessionState, b: SessionState): boolean =>
  a.clientId === b.clientId && a.clean === b.clean && a.expiryInterval === b.expiryInterval &&
  a.subscriptions === b.subscriptions && a.inflight === b.inflight && a.dropped === b.dropped &&
  a.awaitingPubrel === b.awaitingPubrel && a.nextPacketId === b.nextPacketId && a.will === b.will &&
  a.willDelayInterval === b.willDelayInterval && a.willAt === b.willAt && a.receiveMaximum === b.receiveMaximum &&
  a.maximumPacketSize === b.maximumPacketSize && a.disconnectedAt === b.disconnectedAt

/**
 * Whether a session is kept on disk: one with session expiry 0 (3.1.1 clean session) ends with its
 * connection, so after a crash it would be discarded anyway. Mosquitto does not persist those either.
 */
const kept = (state: SessionState | undefined): state is SessionState => state !== undefined && state.expiryInterval !== 0

const encodeHeader = (state: SessionState): string => SessionCodec.encodeSession({ ...state, queue: MessageQueue.empty })

/** Opens (creating if needed) and checks the database; throws `PersistenceFileError`. */
const open = (options: Options): DatabaseSync => {
  const { file } = options
  let db: DatabaseSync
  try {
    db = new DatabaseSync(file)
  } catch (error) {
    throw new PersistenceFileError(file, describe(error))
  }
  try {
    db.exec("PRAGMA busy_timeout = 0")
    db.exec("PRAGMA locking_mode = EXCLUSIVE")
    const mode = (db.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode?: string } | undefined)?.journal_mode
    if (mode !== "wal") throw new Error(`could not switch to WAL (journal mode ${mode})`)
    db.exec(`PRAGMA synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`)
    const check = db.prepare("PRAGMA quick_check").all() as Array<{ quick_check: string }>
    if (check.length !== 1 || check[0]!.quick_check !== "ok") {
      throw new Error(`integrity check failed: ${check.slice(0, 3).map((row) => row.quick_check).join("; ")}`)
    }
    db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      -- a rowid table: a session's row (with its in-flight messages, a few KB) stays on its leaf
      -- page, where WITHOUT ROWID would spill past ~1 KB into overflow pages written at every commit
      CREATE TABLE IF NOT EXISTS sessions (client_id TEXT PRIMARY KEY, state TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS queue (client_id TEXT NOT NULL, seq INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (client_id, seq)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, message TEXT NOT NULL) WITHOUT ROWID;
    `)
    const version = (db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as { value?: string } | undefined)?.value
    if (version === undefined) db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION))
    else if (version !== String(SCHEMA_VERSION)) throw new Error(`layout version ${version}, this broker reads ${SCHEMA_VERSION}`)
    return db
  } catch (error) {
    try {
      db.close()
    } catch {
      // already unusable; the first error is the one to report
    }
    throw error instanceof PersistenceFileError ? error : new PersistenceFileError(file, describe(error))
  }
}

/** Everything stored, decoded; identical message texts (one message queued for many sessions) decode to one value. */
const load = (db: DatabaseSync, file: string) => {
  const interned = new Map<string, Message>()
  const decodeMessage = (text: string): Message => {
    let message = interned.get(text)
    if (message === undefined) {
      message = SessionCodec.decodeMessageSync(text)
      interned.set(text, message)
    }
    return message
  }
  const where = (what: string, error: unknown) => new PersistenceFileError(file, `${what}: ${describe(error)}`)
  const sessions = new Map<string, SessionState>()
  const written = new Map<string, Written>()
  for (const row of db.prepare("SELECT client_id, state FROM sessions").iterate() as Iterable<{ client_id: string; state: string }>) {
    try {
      sessions.set(row.client_id, SessionCodec.decodeSessionSync(row.state))
    } catch (error) {
      throw where(`session ${JSON.stringify(row.client_id)}`, error)
    }
  }
  let clientId: string | undefined
  let messages: Array<Message> = []
  let base = 0
  const flush = () => {
    if (clientId === undefined) return
    const header = sessions.get(clientId)
    // rows of no session: left over by nothing this module does; a new session of that client replaces them
    if (header !== undefined) {
      const state: SessionState = { ...header, queue: MessageQueue.from(messages) }
      sessions.set(clientId, state)
      written.set(clientId, { state, base })
    }
  }
  const rows = db.prepare("SELECT client_id, seq, message FROM queue ORDER BY client_id, seq").iterate() as Iterable<
    { client_id: string; seq: number; message: string }
  >
  for (const row of rows) {
    if (row.client_id !== clientId) {
      flush()
      clientId = row.client_id
      messages = []
      base = row.seq
    }
    if (row.seq !== base + messages.length) throw where(`queue of ${JSON.stringify(row.client_id)}`, `row ${row.seq} out of sequence`)
    try {
      messages.push(decodeMessage(row.message))
    } catch (error) {
      throw where(`queue of ${JSON.stringify(row.client_id)}`, error)
    }
  }
  flush()
  for (const [id, state] of sessions) if (!written.has(id)) written.set(id, { state, base: 0 })
  const retained: Array<Message> = []
  for (const row of db.prepare("SELECT topic, message FROM retained").iterate() as Iterable<{ topic: string; message: string }>) {
    try {
      retained.push(SessionCodec.decodeMessageSync(row.message))
    } catch (error) {
      throw where(`retained message of ${JSON.stringify(row.topic)}`, error)
    }
  }
  return { sessions, written, retained }
}

/** The prepared statements of one connection. */
const statements = (db: DatabaseSync) => ({
  upsertSession: db.prepare(
    "INSERT INTO sessions (client_id, state) VALUES (?, ?) ON CONFLICT (client_id) DO UPDATE SET state = excluded.state"
  ),
  deleteSession: db.prepare("DELETE FROM sessions WHERE client_id = ?"),
  deleteQueue: db.prepare("DELETE FROM queue WHERE client_id = ?"),
  deleteQueueBelow: db.prepare("DELETE FROM queue WHERE client_id = ? AND seq < ?"),
  insertQueue: db.prepare("INSERT INTO queue (client_id, seq, message) VALUES (?, ?, ?)"),
  upsertRetained: db.prepare(
    "INSERT INTO retained (topic, message) VALUES (?, ?) ON CONFLICT (topic) DO UPDATE SET message = excluded.message"
  ),
  deleteRetained: db.prepare("DELETE FROM retained WHERE topic = ?"),
  // prepared once: `exec` would parse them again at every commit
  begin: db.prepare("BEGIN"),
  commit: db.prepare("COMMIT")
})

/** A caller waiting for the commit of its change. */
type Waiter = (result: Effect.Effect<void, SessionStoreError>) => void

/**
 * Opens the store and builds the provider and the retained message store over it; the database is
 * closed (pending writes committed first) when the scope closes. Fails with a `SessionStoreError`
 * whose cause is a `PersistenceFileError` naming the file when it cannot be used: never a fresh
 * start over a file it could not read.
 */
export const make = Effect.fnUntraced(function*(options: Options) {
  const { db, sessions, written, retained } = yield* Effect.try({
    try: () => {
      const db = open(options)
      try {
        return { db, ...load(db, options.file) }
      } catch (error) {
        db.close()
        throw error
      }
    },
    catch: (cause) =>
      new SessionStoreError({
        operation: "open",
        clientId: "",
        cause: cause instanceof PersistenceFileError ? cause : new PersistenceFileError(options.file, describe(cause))
      })
  })
  const sql = statements(db)
  /** Clients whose session changed since the last commit. */
  let dirty = new Set<string>()
  /** Retained changes since the last commit: topic → message, or undefined for a deletion. */
  let dirtyRetained = new Map<string, Message | undefined>()
  let waiters: Array<Waiter> = []
  /** `afterCommit` callbacks for the next commit, in call order. */
  let callbacks: Array<() => void> = []
  let scheduled: NodeJS.Immediate | undefined
  let closed = false

  /** Writes what changed for one client (the queue as rows appended and a range deleted). */
  const writeSession = (clientId: string, staged: Map<string, Written | undefined>): void => {
    const live = sessions.get(clientId)
    const current = kept(live) ? live : undefined
    const previous = written.get(clientId)
    if (current === undefined) {
      if (previous !== undefined) {
        sql.deleteSession.run(clientId)
        sql.deleteQueue.run(clientId)
      }
      staged.set(clientId, undefined)
      return
    }
    if (previous === undefined || !sameHeader(previous.state, current)) sql.upsertSession.run(clientId, encodeHeader(current))
    const changes = previous === undefined ? undefined : current.queue.changesSince(previous.state.queue)
    let base = 0
    let appended: ReadonlyArray<Message>
    if (previous === undefined || changes === undefined) {
      sql.deleteQueue.run(clientId)
      appended = current.queue.toArray()
    } else {
      base = previous.base + changes.dropped
      if (changes.dropped > 0) sql.deleteQueueBelow.run(clientId, base)
      appended = changes.appended
    }
    const first = base + current.queue.length - appended.length
    for (let i = 0; i < appended.length; i++) sql.insertQueue.run(clientId, first + i, SessionCodec.encodeMessage(appended[i]!))
    staged.set(clientId, { state: current, base })
  }

  /** One transaction with everything that changed since the last one; then every waiter completes. */
  const commit = (): void => {
    scheduled = undefined
    const clients = dirty
    const topics = dirtyRetained
    const done = waiters
    const after = callbacks
    dirty = new Set()
    dirtyRetained = new Map()
    waiters = []
    callbacks = []
    // what the database holds once the transaction commits, applied only if it does
    const staged = new Map<string, Written | undefined>()
    let failed: SessionStoreError | undefined
    try {
      sql.begin.run()
      for (const clientId of clients) writeSession(clientId, staged)
      for (const [topic, message] of topics) {
        if (message === undefined) sql.deleteRetained.run(topic)
        else sql.upsertRetained.run(topic, SessionCodec.encodeMessage(message))
      }
      sql.commit.run()
      for (const [clientId, entry] of staged) {
        if (entry === undefined) written.delete(clientId)
        else written.set(clientId, entry)
      }
    } catch (cause) {
      if (db.isTransaction) db.exec("ROLLBACK")
      // still to be written: the next commit tries again
      for (const clientId of clients) dirty.add(clientId)
      for (const [topic, message] of topics) if (!dirtyRetained.has(topic)) dirtyRetained.set(topic, message)
      failed = new SessionStoreError({ operation: "commit", clientId: Array.from(clients).join(","), cause })
    }
    const result = failed === undefined ? Effect.void : Effect.fail(failed)
    // callbacks first: what a resumed fiber registers must come after them
    if (failed === undefined) for (const f of after) f()
    for (const waiter of done) waiter(result)
  }

  const schedule = (): void => {
    if (scheduled === undefined && !closed) scheduled = setImmediate(commit)
  }

  /** Completes when the transaction holding the changes made so far has committed. */
  const committed: Effect.Effect<void, SessionStoreError> = Effect.callback<void, SessionStoreError>((resume) => {
    waiters.push(resume)
    // changes left by a failed commit are retried when someone waits for them
    schedule()
  })

  const closedError = (operation: string, clientId: string) =>
    new SessionStoreError({ operation, clientId, cause: new PersistenceFileError(options.file, "closed") })

  /** Applies an update in memory and marks the client for the next commit; says whether it is uncommitted now. */
  const apply = <A>(clientId: string, update: SessionUpdate<A>): [result: A, pending: boolean] => {
    const current = sessions.get(clientId)
    const [result, next] = update(Option.fromUndefinedOr(current))
    const value = Option.getOrUndefined(next)
    if (value !== current) {
      if (value === undefined) sessions.delete(clientId)
      else sessions.set(clientId, value)
      // a session that is not kept on disk, and was not, costs no commit
      if (kept(value) || written.has(clientId) || dirty.has(clientId)) {
        dirty.add(clientId)
        schedule()
      }
    }
    return [result, dirty.has(clientId)]
  }

  const modify = <A>(clientId: string, update: SessionUpdate<A>): Effect.Effect<A, SessionStoreError> =>
    Effect.suspend(() => {
      if (closed) return Effect.fail(closedError("modify", clientId))
      const [result, pending] = apply(clientId, update)
      // a result read from a change not yet committed waits for that commit too
      return pending ? Effect.as(committed, result) : Effect.succeed(result)
    })

  const modifyDeferred = <A>(clientId: string, update: SessionUpdate<A>): Effect.Effect<A, SessionStoreError> =>
    Effect.suspend(() => closed ? Effect.fail(closedError("modify", clientId)) : Effect.succeed(apply(clientId, update)[0]))

  /** Waits for the commit of whatever is pending; nothing pending, nothing to wait for. */
  const barrier: Effect.Effect<void, SessionStoreError> = Effect.suspend(() =>
    dirty.size > 0 || dirtyRetained.size > 0 ? committed : Effect.void
  )

  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      if (closed) return
      if (scheduled !== undefined) clearImmediate(scheduled)
      if (dirty.size > 0 || dirtyRetained.size > 0 || waiters.length > 0 || callbacks.length > 0) commit()
      closed = true
      db.close()
    })
  )

  const provider = SessionStateProvider.of({
    get: (clientId) => Effect.sync(() => Option.fromUndefinedOr(sessions.get(clientId))),
    store: (state) => modify(state.clientId, () => [undefined, Option.some(state)]),
    remove: (clientId) => modify(clientId, () => [undefined, Option.none()]),
    modify,
    clientIds: Effect.sync(() => Array.from(sessions.keys()))
  })
  const retainedStore = RetainedMessageStore.of({
    stored: retained,
    set: (topic, message) => {
      dirtyRetained.set(topic, message)
      schedule()
    },
    delete: (topic) => {
      dirtyRetained.set(topic, undefined)
      schedule()
    }
  })
  const afterCommit = (f: () => void): void => {
    if (closed) return
    if (dirty.size === 0 && dirtyRetained.size === 0 && callbacks.length === 0) return f()
    callbacks.push(f)
    schedule()
  }

  const groupCommit = GroupCommit.of({ modifyDeferred, committed: barrier, afterCommit })
  return { provider, retained: retainedStore, groupCommit }
})

/**
 * The SQLite provider, its retained message store and its deferred commits (`GroupCommit`, which
 * `Sessions` uses when present) as a Layer; the database closes with the Layer.
 */
export const layer = (
  options: Options
): Layer.Layer<SessionStateProvider | RetainedMessageStore | GroupCommit, SessionStoreError> =>
  Layer.effectContext(
    Effect.map(make(options), ({ groupCommit, provider, retained }) =>
      Context.make(SessionStateProvider, provider).pipe(
        Context.add(RetainedMessageStore, retained),
        Context.add(GroupCommit, groupCommit)
      ))
  )
