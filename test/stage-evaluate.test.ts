// The scoring kinds' definitions: `with:` read with defaults, deps and outs, the loader's check, and the
// checks of a model against the data (each message exact: it is what a user reads).
import { describe, expect, it } from "vitest"
import { evaluateOptions } from "../stages/evaluate-options.js"
import { forgettingOptions } from "../stages/forgetting-check-options.js"
import { checkClassifier, checkVocabulary, type ModelInfo } from "../stages/model-checks.js"
import { kinds } from "../stages/registry.js"
import type { TokensManifest } from "../stages/tokenize-format.js"

describe("evaluate's with:", () => {
  it("keeps the models in the order listed, the last one the primary", () => {
    const o = evaluateOptions({ data: "out/tok/", models: { base: "out/base", tuned: "out/tuned/" } })
    expect(o).toEqual({
      data: "out/tok",
      models: [
        { name: "base", path: "out/base" },
        { name: "tuned", path: "out/tuned" },
      ],
      primary: "tuned",
      split: "test",
      batchSize: 32,
      baseline: true,
      examples: 10,
    })
    expect(evaluateOptions({ data: "d", models: { a: "x", b: "y" }, primary: "a" }).primary).toBe("a")
  })

  it("derives its deps (data and every model) and its out folder", () => {
    const k = kinds.get("evaluate")!
    const args = { data: "out/tok", models: { a: "out/a", b: "out/b", again: "out/a" } }
    expect(k.deps(args)).toEqual(["out/tok", "out/a", "out/b"])
    expect(k.outs(args, "outputs/p/eval")).toEqual(["outputs/p/eval"])
  })

  it("reports a primary that is not a model before anything runs", () => {
    expect(kinds.get("evaluate")!.check!({ data: "d", models: { a: "x" }, primary: "b" })).toEqual([
      {
        message: 'primary "b" is not one of the models (a)',
        hint: "Set `primary` to the name of a model under `models`, or leave it out to use the last one listed.",
      },
    ])
  })
})

describe("forgetting-check's with:", () => {
  it("reads the defaults", () => {
    expect(forgettingOptions({ before: "a/", after: "b", data: "c", max_drop: 0.02 })).toEqual({
      before: "a",
      after: "b",
      data: "c",
      split: "test",
      metric: "masked_accuracy",
      maxDrop: 0.02,
      warnOnly: false,
      maskRate: 0.15,
      seed: 0,
      maxExamples: undefined,
      batchSize: 32,
    })
    const k = kinds.get("forgetting-check")!
    expect(k.deps({ before: "a", after: "b", data: "c" })).toEqual(["a", "b", "c"])
  })
})

describe("a model against the data", () => {
  const manifest = { vocab_size: 100, labels: ["ham", "spam"] } as unknown as TokensManifest
  const info = (metadata: Record<string, unknown>, vocabSize = 100, numLabels = 2): ModelInfo => ({
    folder: "/p/out/train/model",
    vocabSize,
    numLabels,
    metadata,
  })
  const classifier = { task: "classification", labels: ["ham", "spam"], vocab_size: 100 }

  it("accepts a classifier of the data's labels and vocabulary", () => {
    expect(checkClassifier(info(classifier), manifest, "models.tuned", "out/tok")).toEqual(["ham", "spam"])
    expect(() => checkVocabulary(info(classifier), manifest, "models.tuned", "out/tok")).not.toThrow()
  })

  it("refuses another vocabulary size, saying what to do", () => {
    expect(() => checkVocabulary(info(classifier, 8000), manifest, "models.tuned", "out/tok")).toThrow(
      "models.tuned: the model has a vocabulary of 8000 tokens, the data (out/tok) 100\n   Tokenize the data with the model's vocabulary (the tokenize stage it was trained on, or `vocab:` that stage's tokenizer.json), or use a model trained on this data's tokenizer.",
    )
  })

  it("refuses other labels, or the same in another order", () => {
    expect(() =>
      checkClassifier(info({ ...classifier, labels: ["spam", "ham"] }), manifest, "models.tuned", "out/tok"),
    ).toThrow(
      "models.tuned: the model predicts the labels [spam, ham], the data (out/tok) has [ham, spam]\n   Evaluate on data with the labels the model was trained on, in the same order (the ingest stage's `labels`), or train the model on this data.",
    )
  })

  it("refuses a masked-LM model and a model without metadata", () => {
    expect(() => checkClassifier(info({ task: "mlm" }), manifest, "models.pre", "out/tok")).toThrow(
      'models.pre: this is a masked-LM model (task "mlm"), not a classifier',
    )
    expect(() => checkClassifier(info({}), manifest, "models.x", "out/tok")).toThrow(
      "models.x: the model's metadata does not say it is a classifier (task null)",
    )
  })

  it("refuses unlabeled data", () => {
    expect(() =>
      checkClassifier(info(classifier), { ...manifest, labels: null }, "models.tuned", "out/corpus"),
    ).toThrow("data: out/corpus has no labels, so there is nothing to score a classifier against")
  })
})
