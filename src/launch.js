// The `npm start` entry. Plain JavaScript without dependencies, so that any Node can run it and
// say in one line why it cannot run the broker, instead of failing inside a dependency or on
// TypeScript syntax. ESM imports are hoisted, so this check cannot live in main.ts itself: it
// runs first here, and only then is main.ts imported.

const MINIMUM = [22, 19]
const version = process.versions.node
const [major, minor] = version.split(".").map(Number)
// type stripping (how Node runs the .ts sources) is on by default from 22.18 and 23.6
const typeStripping = major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18)
const recentEnough = major > MINIMUM[0] || (major === MINIMUM[0] && minor >= MINIMUM[1])

if (!recentEnough || !typeStripping) {
  process.stderr.write(
    `effect-mqtt-broker: needs Node >= ${MINIMUM.join(".")} (this is ${version}); run it through npm start, which uses the pinned Node 24\n`
  )
  process.exit(1)
} else {
  import("./main.ts").catch((error) => {
    // main.ts failed to load (a missing dependency: `npm ci` not run); its own errors are handled inside
    process.stderr.write(`effect-mqtt-broker: cannot load the broker: ${error && error.message ? error.message : error}\n`)
    process.exit(1)
  })
}
