/**
 * The process entry of `npm start`, the installed bin and the bench: the start bundle's input
 * (entry/bundle.js writes it as dist/start/main.js), and what launch.js runs from the sources
 * when no bundle can be built. It gives the process its young-generation size first
 * (YoungGeneration.ts: a re-execution with Node flags, when needed), and only then loads the
 * broker (`main.ts`): a dynamic import, so that a re-execution happens before ~400 modules are
 * loaded rather than after (static imports would all be loaded first). `src/main.ts` run directly
 * (the tests do) runs with V8's default young generation.
 */
import { ensureYoungGeneration } from "./YoungGeneration.ts"

ensureYoungGeneration()
await import("../main.ts")
