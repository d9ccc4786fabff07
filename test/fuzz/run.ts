/**
 * Long fuzz runs from the command line:
 *
 *     npm run fuzz -- --cases 20000 --seed 1234
 *     npm run fuzz -- --cases 2000 --flood      (50 × 16 MB QoS 1 uploads in a loop meanwhile)
 *
 * Prints the seed, the per-class table, the canary figures and each distinct deviation once with
 * its clause; exits 1 on any innocent victim, canary loss, dead broker or deviation.
 */
import { parseArgs } from "node:util"
import { failuresOf, runCampaign } from "./Campaign.ts"
import { formatReport } from "./Report.ts"

const { values } = parseArgs({
  options: {
    cases: { type: "string", default: "1000" },
    seed: { type: "string" },
    concurrency: { type: "string", default: "12" },
    flood: { type: "boolean", default: false },
    help: { type: "boolean", default: false }
  }
})
if (values.help) {
  console.log("npm run fuzz -- [--cases N] [--seed N] [--concurrency N] [--flood]")
  process.exit(0)
}
const cases = Number(values.cases)
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed)
const concurrency = Number(values.concurrency)
if (!Number.isInteger(cases) || cases < 0 || !Number.isInteger(seed) || !Number.isInteger(concurrency) || concurrency < 1) {
  console.error("--cases, --seed and --concurrency take integers")
  process.exit(2)
}
console.log(`fuzz: seed ${seed}, ${cases} cases, ${concurrency} at a time${values.flood ? ", with flood" : ""}`)

let lastShown = 0
const report = await runCampaign({
  cases,
  seed,
  concurrency,
  flood: values.flood,
  progress: (done, total) => {
    if (Date.now() - lastShown > 5000 || done === total) {
      lastShown = Date.now()
      console.log(`  ${done}/${total} cases`)
    }
  }
})
console.log("")
console.log(formatReport(report))
const failures = failuresOf(report)
console.log("")
console.log(failures.length === 0 ? "PASS" : `FAIL (seed ${seed}): ${failures.join("; ")}`)
process.exit(failures.length === 0 ? 0 : 1)
