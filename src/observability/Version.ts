/**
 * The broker's name and version as `$SYS/broker/version` reports them; kept equal to
 * package.json's version (a test checks), since the sources run without reading package.json.
 */

/** The product name. */
export const NAME = "effect-mqtt-broker"

/** The version, as in package.json. */
export const VERSION = "0.1.0"

/** `$SYS/broker/version`'s payload, in Mosquitto's form ("mosquitto version 2.0.11"). */
export const versionLine = `${NAME} version ${VERSION}`
