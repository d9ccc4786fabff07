/** The broker config that flags and environment describe, as the entrypoint would load it. */
import { expect } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import type * as BrokerConfig from "../../src/config/BrokerConfig.ts"
import * as Load from "../../src/config/Load.ts"
import * as Settings from "../../src/config/Settings.ts"

/** Flag values as the command line gives them. */
export type FlagValues = Parameters<typeof Settings.fromFlags>[0]

/** The config `flags` and `env` describe, or the one-line message it is refused with. */
export const loadConfig = (flags: FlagValues, env: Record<string, string> = {}): BrokerConfig.BrokerConfig | string => {
  const exit = Effect.runSyncExit(Load.load([Settings.fromFlags(flags), Settings.fromEnv(env)]))
  if (Exit.isSuccess(exit)) return exit.value
  const error = Cause.squash(exit.cause) as Error
  expect(error.name).toBe("ConfigError")
  return error.message
}
