#!/usr/bin/env node
// The installed package's command, `effect-mqtt-broker`: what `npm start` is in the repository,
// for the built JavaScript in dist/. Plain JavaScript without dependencies, so that any Node can
// run it and say in one line why it cannot run the broker, instead of failing inside a
// dependency. ESM imports are hoisted, so the check runs here and only then is the broker imported:
// the start bundle (dist/start/main.js, built by `npm run build`, see src/entry/bundle.js), one
// minified module instead of ~400, which halves the RSS at start.

const MINIMUM = [22, 19]
const version = process.versions.node
const [major, minor] = version.split(".").map(Number)

if (major < MINIMUM[0] || (major === MINIMUM[0] && minor < MINIMUM[1])) {
  process.stderr.write(`effect-mqtt-broker: needs Node >= ${MINIMUM.join(".")} (this is ${version})\n`)
  process.exit(1)
} else {
  import("../dist/start/main.js").catch((error) => {
    // main.js failed to load (a dependency missing from the install); its own errors are handled inside
    process.stderr.write(`effect-mqtt-broker: cannot load the broker: ${error && error.message ? error.message : error}\n`)
    process.exit(1)
  })
}
