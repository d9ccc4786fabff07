/**
 * Vitest configuration for mutation testing (`npx stryker run`): only the session suite, which is
 * what covers `src/session`. Each property runs `PROPS_RUNS` times (100 unless set), enough to kill
 * mutants while keeping a Stryker run to minutes.
 */
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/session/**/*.test.ts"],
    env: { PROPS_RUNS: process.env["PROPS_RUNS"] ?? "100" }
  }
})
