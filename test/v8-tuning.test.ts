/**
 * The stage-phase V8 budget (`src/v8-tuning.ts`) is set only on the Node version it was measured on. What it
 * gains is measured by `bench/overhead.mjs`, not here.
 */
import { describe, expect, it } from "vitest"
import { tuneForStages } from "../src/v8-tuning.js"

describe("tuneForStages", () => {
  it("changes nothing on a Node version it was not measured on", () => {
    expect(tuneForStages("22.1.0")).toBe(false)
    expect(tuneForStages("18.20.0")).toBe(false)
    expect(tuneForStages("20.19.0")).toBe(true)
  })
})
