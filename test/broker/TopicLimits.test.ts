import { describe, expect, it } from "@effect/vitest"
import { exceeded } from "../../src/broker/TopicLimits.ts"

describe("TopicLimits.exceeded", () => {
  it("counts UTF-8 bytes, not characters", () => {
    expect(exceeded("abcd", 4, 0)).toBeUndefined()
    expect(exceeded("abcde", 4, 0)).toBe("5 bytes, over --max-topic-length 4")
    // "é" is one UTF-16 code unit but two UTF-8 bytes
    expect(exceeded("éé", 4, 0)).toBeUndefined()
    expect(exceeded("ééé", 5, 0)).toBe("6 bytes, over --max-topic-length 5")
  })

  it("counts levels as slashes plus one, empty levels included; 0 is no limit", () => {
    expect(exceeded("a/b/c", 65_535, 3)).toBeUndefined()
    expect(exceeded("a/b/c/d", 65_535, 3)).toBe("4 levels, over --max-topic-levels 3")
    expect(exceeded("///", 65_535, 3)).toBe("4 levels, over --max-topic-levels 3")
    expect(exceeded("//", 65_535, 3)).toBeUndefined()
    expect(exceeded("/".repeat(1000), 65_535, 0)).toBeUndefined()
    expect(exceeded("a/+/#", 65_535, 2)).toBe("3 levels, over --max-topic-levels 2")
  })

  it("a topic shorter than the level limit is never past it", () => {
    for (const topic of ["", "a", "/", "a/b", "//"]) expect(exceeded(topic, 65_535, 4)).toBeUndefined()
  })
})
