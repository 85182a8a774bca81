import { describe, expect, it } from "vitest"
import { parseDuration } from "../src/duration.js"

describe("parseDuration", () => {
  it("reads seconds and unit strings", () => {
    expect(parseDuration(30)).toBe(30_000)
    expect(parseDuration(0.25)).toBe(250)
    expect(parseDuration("500ms")).toBe(500)
    expect(parseDuration("30s")).toBe(30_000)
    expect(parseDuration("10m")).toBe(600_000)
    expect(parseDuration("2h")).toBe(7_200_000)
    expect(parseDuration("1h30m")).toBe(5_400_000)
    expect(parseDuration("1m30s500ms")).toBe(90_500)
    expect(parseDuration("1.5s")).toBe(1500)
  })

  it("refuses anything else", () => {
    for (const bad of ["", "10", "1h30", "30 s", "10x", "s", "30s1m", "-1s", "1.s"])
      expect(parseDuration(bad)).toBeUndefined()
    expect(parseDuration(-1)).toBeUndefined()
    expect(parseDuration(Number.NaN)).toBeUndefined()
    expect(parseDuration(true)).toBeUndefined()
  })
})
