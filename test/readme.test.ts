import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"

describe("README", () => {
  for (const example of ["embed.ts", "security.ts", "persistence.ts"]) {
    it(`embeds examples/${example} verbatim, so the Layer example it shows is the type-checked one`, () => {
      const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
      const marker = `<!-- example:examples/${example} -->\n\`\`\`ts\n`
      const start = readme.indexOf(marker)
      expect(start).not.toBe(-1)
      const body = readme.slice(start + marker.length, readme.indexOf("```", start + marker.length))
      expect(body).toBe(readFileSync(new URL(`../examples/${example}`, import.meta.url), "utf8"))
    })
  }
})
