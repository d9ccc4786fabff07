import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"

describe("README", () => {
  it("embeds examples/embed.ts verbatim, so the Layer example it shows is the type-checked one", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
    const block = /<!-- example:examples\/embed\.ts -->\n```ts\n([\s\S]*?)```/.exec(readme)
    expect(block).not.toBeNull()
    expect(block![1]).toBe(readFileSync(new URL("../examples/embed.ts", import.meta.url), "utf8"))
  })
})
