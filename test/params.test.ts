import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { applySets, getParam, paramNames, parseSet } from "../src/params.js"

const defaults = { lr: 0.1, train: { epochs: 3, optimizer: { name: "sgd" } }, tags: ["a"] }

const setError = (sets: ReadonlyArray<string>) => {
  const result = applySets(defaults, sets)
  if (Either.isRight(result)) throw new Error("expected a usage error")
  return [result.left.message, result.left.hint]
}

describe("params", () => {
  it("lists every dotted name, groups included", () => {
    expect(paramNames(defaults)).toEqual([
      "lr",
      "train",
      "train.epochs",
      "train.optimizer",
      "train.optimizer.name",
      "tags",
    ])
  })

  it("looks up dotted names and groups", () => {
    expect(getParam(defaults, "train.optimizer.name")).toEqual({ found: true, value: "sgd" })
    expect(getParam(defaults, "train.optimizer")).toEqual({ found: true, value: { name: "sgd" } })
    expect(getParam(defaults, "train.nope")).toEqual({ found: false })
    expect(getParam(defaults, "lr.x")).toEqual({ found: false })
    expect(getParam(defaults, "toString")).toEqual({ found: false })
  })
})

describe("--set", () => {
  it("parses the value as a YAML scalar", () => {
    const value = (raw: string) => Either.getOrThrow(parseSet(raw)).value
    expect(value("lr=1e-3")).toBe(0.001)
    expect(value("x=true")).toBe(true)
    expect(value("x=42")).toBe(42)
    expect(value("x='x; rm -rf ~'")).toBe("x; rm -rf ~")
    expect(value("x=a=b")).toBe("a=b")
    expect(value("x=")).toBe("")
    expect(value('x="[1, 2]"')).toBe("[1, 2]")
  })

  it("overrides without touching siblings, the last --set winning", () => {
    const result = Either.getOrThrow(applySets(defaults, ["train.optimizer.name=adam", "lr=1", "lr=2"]))
    expect(result).toEqual({ lr: 2, train: { epochs: 3, optimizer: { name: "adam" } }, tags: ["a"] })
    expect(defaults.train.optimizer.name).toBe("sgd")
  })

  it("refuses what it cannot set", () => {
    expect(setError(["lr"])).toEqual([
      '--set "lr" has no "="',
      "Write --set NAME=VALUE, for example --set train.lr=0.001.",
    ])
    expect(setError(["lr=[1]"])[0]).toBe(
      '--set "lr=[1]": the value must be a single number, string or boolean',
    )
    expect(setError(["lr={a: 1}"])[0]).toBe(
      '--set "lr={a: 1}": the value must be a single number, string or boolean',
    )
    expect(setError(["train.epoch=1"])).toEqual([
      '--set "train.epoch=1": unknown param "train.epoch"',
      'Did you mean "train.epochs"?',
    ])
    expect(setError(["momentum=1"])).toEqual([
      '--set "momentum=1": unknown param "momentum"',
      '--set can only change params declared under "params:" in the pipeline: "lr", "train", "train.epochs", "train.optimizer", "train.optimizer.name", "tags".',
    ])
    expect(setError(["train=1"])).toEqual([
      '--set "train=1": param "train" is a group of params',
      'Set one of its members instead: "train.epochs", "train.optimizer".',
    ])
  })
})
