/**
 * A configuration the broker refuses to start with. `message` is the one line an operator
 * reads: it names the flag, environment variable or config file key the value came from, the
 * value, and what is allowed (`--port -1 is not a port (0-65535)`).
 */
import { Schema } from "effect"

/** A configuration value (or combination of values) the broker cannot run with. */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  /** The keys involved (`Settings` keys, e.g. "port", or a config file's "listeners", "config" for the file itself), for callers that want more than the line. */
  keys: Schema.Array(Schema.String),
  message: Schema.String
}) {}
