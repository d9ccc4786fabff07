/**
 * The provider-generic conformance suite over the SQLite provider: a fresh database file in a
 * temporary directory each time the Layer is built, removed when it is released. Every scenario
 * opens and closes a database, so by default it runs 10 scenarios per property (the memory
 * provider runs the full count on the same suite); `PROPS_RUNS` sets it, as for every suite.
 */
import { Effect, Layer } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as SqliteSessionStateProvider from "../../src/session/providers/SqliteSessionStateProvider.ts"
import { SessionStateProvider } from "../../src/session/SessionStateProvider.ts"

process.env["PROPS_RUNS"] ??= "10"
// imported after PROPS_RUNS is set: Props.ts reads it when it loads
const { providerConformance } = await import("./SessionModel.ts")

/** A provider over a new temporary database file, deleted with the Layer's scope. */
const fresh: Layer.Layer<SessionStateProvider> = Layer.unwrap(
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "mqtt-sqlite-conformance-"))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  ).pipe(Effect.map((dir) => SqliteSessionStateProvider.layer({ file: join(dir, "sessions.db") })))
).pipe(Layer.orDie)

providerConformance("SQLite", fresh)
