/**
 * `evaluate`: scores classification models on one split of a tokenize stage's output, all on the same
 * examples, beside a bag-of-words baseline, and lists examples where the models disagree. Writes into its
 * out folder `metrics.json` (the primary model's accuracy, f1_macro and loss at the top, every model under
 * `models`, the baseline under `baseline`) and `report.md`, the same for a person.
 */
import { mkdir, rm, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { type BackendChoice, initBackend, releaseBackend } from "../src/compute/backend.js"
import { type BaselineInfo, bagOfWordsBaseline } from "../src/eval/baseline.js"
import {
  type Predicted,
  type PredictorMetrics,
  pickExamples,
  predictedFrom,
} from "../src/eval/predictions.js"
import { classifierLogProbs } from "../src/eval/scoring.js"
import { disposeBert } from "../src/model/index.js"
import { loadModelFrom } from "../src/train/model-dir.js"
import { openTokenData, type TokenData } from "../src/train/token-data.js"
import { type StageImplementation, StageInputError } from "./api.js"
import { type EvaluateOptions, evaluateOptions } from "./evaluate-options.js"
import { renderReport } from "./evaluate-report.js"
import { checkClassifier, checkVocabulary, readModelInfo } from "./model-checks.js"
import type { SplitArrays } from "./tokenize-format.js"

export type { PredictorMetrics } from "../src/eval/predictions.js"
export { type EvaluateOptions, evaluateOptions } from "./evaluate-options.js"

/** A predictor's answer on one example. */
export interface Prediction {
  readonly label: string
  /** the probability it gave its predicted label */
  readonly probability: number
}

/** An example listed in metrics.json and report.md. */
export interface Example {
  /** the row in the split (0-based) */
  readonly row: number
  /** decoded from the token ids, so as the models saw it (lowercased, truncated) */
  readonly text: string
  readonly label: string
  readonly predictions: Readonly<Record<string, Prediction>>
  readonly baseline?: Prediction
}

/** `metrics.json`. */
export interface EvaluateMetrics {
  readonly split: string
  readonly examples: number
  readonly labels: ReadonlyArray<string>
  /** the model whose scores are repeated at the top level */
  readonly primary: string
  readonly accuracy: number
  readonly f1_macro: number
  readonly loss: number
  readonly models: Readonly<Record<string, PredictorMetrics>>
  readonly baseline: (PredictorMetrics & { readonly info: BaselineInfo }) | null
  /** with two or more models: rows where they disagree; with one: rows it gets wrong */
  readonly listed: "disagreements" | "errors"
  /** how many rows are such */
  readonly disagreements: number
  readonly disagreement_examples: ReadonlyArray<Example>
  readonly backend: { readonly name: string; readonly versions: Readonly<Record<string, string>> }
}

const round = (x: number) => Number(x.toFixed(6))

const rounded = (s: PredictorMetrics): PredictorMetrics => ({
  ...s,
  accuracy: round(s.accuracy),
  precision_macro: round(s.precision_macro),
  recall_macro: round(s.recall_macro),
  f1_macro: round(s.f1_macro),
  loss: round(s.loss),
  per_label: Object.fromEntries(
    Object.entries(s.per_label).map(([l, v]) => [
      l,
      { precision: round(v.precision), recall: round(v.recall), f1: round(v.f1), support: v.support },
    ]),
  ),
})

/** The text of a row, as the models saw it: its ids decoded, without [CLS], [SEP] and padding. */
const rowText = (data: TokenData, split: SplitArrays, row: number): string => {
  const s = data.manifest.special_ids
  const skip = new Set([s.cls, s.sep, s.pad])
  const ids: number[] = []
  const from = row * split.cols
  for (let t = 0; t < Math.min(split.lengths[row]!, split.cols); t++) {
    const id = split.ids[from + t]!
    if (!skip.has(id)) ids.push(id)
  }
  return data.tokenizer.decode(ids)
}

const checkModels = async (
  root: string,
  o: EvaluateOptions,
  data: TokenData,
): Promise<ReadonlyArray<string>> => {
  let labels: ReadonlyArray<string> = []
  for (const m of o.models) {
    const what = `models.${m.name}`
    const info = await readModelInfo(root, m.path, what)
    checkVocabulary(info, data.manifest, what, o.data)
    labels = checkClassifier(info, data.manifest, what, o.data)
  }
  return labels
}

const scoreModels = async (
  ctx: Parameters<StageImplementation>[0],
  o: EvaluateOptions,
  data: TokenData,
  split: SplitArrays,
  labels: ReadonlyArray<string>,
): Promise<Map<string, Predicted>> => {
  const out = new Map<string, Predicted>()
  for (const [i, m] of o.models.entries()) {
    const { model } = await loadModelFrom(resolve(ctx.root, m.path), `models.${m.name}`)
    try {
      const started = Date.now()
      const logProbs = await classifierLogProbs(model, split, {
        batchSize: o.batchSize,
        padId: data.manifest.special_ids.pad,
        onProgress: (done, total) =>
          ctx.progress({ step: i * total + done, total: o.models.length * total, model: m.name }),
      })
      const probs = logProbs.map(Math.exp)
      const p = predictedFrom(probs, split.labels!, labels, logProbs)
      out.set(m.name, p)
      const seconds = (Date.now() - started) / 1000
      process.stdout.write(
        `${m.name}: accuracy ${p.metrics.accuracy.toFixed(4)}, f1_macro ${p.metrics.f1_macro.toFixed(4)}, loss ${p.metrics.loss.toFixed(4)} (${split.rows} examples in ${seconds.toFixed(1)}s)\n`,
      )
    } finally {
      disposeBert(model)
    }
  }
  return out
}

const baselineOf = async (
  o: EvaluateOptions,
  data: TokenData,
  split: SplitArrays,
  labels: ReadonlyArray<string>,
): Promise<{ predicted: Predicted; info: BaselineInfo }> => {
  const train = await data.split("train")
  if (train.labels === null || train.rows === 0)
    throw new StageInputError(
      `data: the train split of ${o.data} has no labeled rows for the baseline to learn from\n   Give the ingest stage a train split, or set \`baseline: false\`.`,
    )
  const started = Date.now()
  const s = data.manifest.special_ids
  const mask = data.masking?.maskId
  const { probs, info } = bagOfWordsBaseline(train, split, {
    vocabSize: data.manifest.vocab_size,
    specialIds: [s.pad, s.cls, s.sep, ...(mask === undefined ? [] : [mask])],
    classes: labels.length,
  })
  const predicted = predictedFrom(probs, split.labels!, labels)
  const seconds = (Date.now() - started) / 1000
  process.stdout.write(
    `baseline (${info.method}, ${info.features} features, ${info.iterations} iterations): accuracy ${predicted.metrics.accuracy.toFixed(4)}, f1_macro ${predicted.metrics.f1_macro.toFixed(4)} in ${seconds.toFixed(1)}s\n`,
  )
  return { predicted, info }
}

/** Runs an evaluate stage. */
export const run: StageImplementation = async (ctx) => {
  const o = evaluateOptions(ctx.args)
  const out = ctx.outs[ctx.outs.length - 1]!
  const data = await openTokenData(resolve(ctx.root, o.data), "data")
  const split = await data.split(o.split)
  const labels = await checkModels(ctx.root, o, data)
  if (split.rows === 0)
    throw new StageInputError(
      `data: the ${o.split} split of ${o.data} has no rows\n   Give that split a share in the ingest stage's \`split\`, or evaluate another \`split\`.`,
    )
  const truth = split.labels!
  const k = labels.length
  let backend: BackendChoice
  let models: Map<string, Predicted>
  try {
    backend = await initBackend()
    process.stdout.write(`backend ${backend.name}: ${backend.reason}\n`)
    models = await scoreModels(ctx, o, data, split, labels)
  } finally {
    await releaseBackend()
  }
  const baseline = o.baseline ? await baselineOf(o, data, split, labels) : null

  const picked = pickExamples([...models.values()], truth, k)
  const answer = (p: Predicted, r: number): Prediction => ({
    label: labels[p.predicted[r]!]!,
    probability: round(p.probs[r * k + p.predicted[r]!]!),
  })
  const examples: Example[] = picked.rows.slice(0, o.examples).map((r) => ({
    row: r,
    text: rowText(data, split, r),
    label: labels[truth[r]!]!,
    predictions: Object.fromEntries([...models].map(([name, p]) => [name, answer(p, r)])),
    ...(baseline === null ? {} : { baseline: answer(baseline.predicted, r) }),
  }))
  const primary = rounded(models.get(o.primary)!.metrics)
  const metrics: EvaluateMetrics = {
    split: o.split,
    examples: split.rows,
    labels,
    primary: o.primary,
    accuracy: primary.accuracy,
    f1_macro: primary.f1_macro,
    loss: primary.loss,
    models: Object.fromEntries([...models].map(([name, p]) => [name, rounded(p.metrics)])),
    baseline:
      baseline === null
        ? null
        : { ...rounded(baseline.predicted.metrics), info: { ...baseline.info, l2: round(baseline.info.l2) } },
    listed: picked.kind,
    disagreements: picked.rows.length,
    disagreement_examples: examples,
    backend: { name: backend.name, versions: backend.versions },
  }
  await rm(out, { recursive: true, force: true })
  await mkdir(out, { recursive: true })
  await writeFile(join(out, "metrics.json"), `${JSON.stringify(metrics, null, 2)}\n`)
  await writeFile(join(out, "report.md"), renderReport(metrics))
  ctx.progress({ accuracy: metrics.accuracy, f1_macro: metrics.f1_macro, loss: metrics.loss })
}
