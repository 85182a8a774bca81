import { describe, expect, it } from "vitest"
import { closest, editDistance, suggestion } from "../src/suggest.js"

describe("editDistance", () => {
  it("counts inserts, deletes, substitutions and swaps", () => {
    expect(editDistance("cmd", "cmd")).toBe(0)
    expect(editDistance("cmdd", "cmd")).toBe(1)
    expect(editDistance("inptu", "input")).toBe(1)
    expect(editDistance("kitten", "sitting")).toBe(3)
    expect(editDistance("", "abc")).toBe(3)
  })
})

describe("closest", () => {
  it("suggests plausible typos only", () => {
    expect(closest("cmdd", ["description", "cmd", "uses"])).toBe("cmd")
    expect(closest("stagse", ["name", "stages"])).toBe("stages")
    expect(closest("Train", ["train", "test"])).toBe("train")
    expect(closest("prepair", ["prepare", "train"])).toBe("prepare")
    expect(closest("x", ["env", "cmd"])).toBeUndefined()
    expect(closest("artifacts", ["outs", "deps"])).toBeUndefined()
  })

  it("compares dotted names by the segments that differ", () => {
    expect(closest("train.epoch", ["train.lr", "train.epochs"])).toBe("train.epochs")
    expect(closest("train.batch", ["train.lr", "train.epochs"])).toBeUndefined()
  })
})

describe("suggestion", () => {
  it("falls back to listing the known names", () => {
    const fallback = { listed: "Stages:", none: "There are none." }
    expect(suggestion("trian", ["train"], fallback)).toBe('Did you mean "train"?')
    expect(suggestion("zzz", ["a", "b"], fallback)).toBe('Stages: "a", "b".')
    expect(suggestion("zzz", [], fallback)).toBe("There are none.")
  })
})
