import { configDefaults, defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // a Stryker run leaves sandbox copies of the tests behind if it is interrupted
    exclude: [...configDefaults.exclude, ".stryker-tmp/**", "reports/**"]
  }
})
