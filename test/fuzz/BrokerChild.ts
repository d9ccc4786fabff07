/**
 * Child-process entry for `--flood`: the broker under test in a process of its own (as it runs in
 * production), so its event loop and heap are not shared with the canary, the probes and the
 * innocent clients that measure it. Started with the broker config as JSON; prints `PORT <n>`,
 * then one line per broker log line; stops on SIGTERM.
 */
import { tuneGarbageCollector } from "../../src/entry/GcTuning.ts"
import { startTestBroker } from "../support/TestBroker.ts"

// as the node entrypoint does: what the canary measures is the broker as it runs in production
tuneGarbageCollector()

const config = JSON.parse(process.argv[2] ?? "{}") as Parameters<typeof startTestBroker>[0]
const broker = await startTestBroker(config)
process.stdout.write(`PORT ${broker.port}\n`)
let printed = 0
const flush = () => {
  while (printed < broker.logs.length) process.stdout.write(`LOG ${broker.logs[printed++]}\n`)
}
const timer = setInterval(flush, 100)
process.once("SIGTERM", async () => {
  clearInterval(timer)
  await broker.stop()
  flush()
  process.exit(0)
})
