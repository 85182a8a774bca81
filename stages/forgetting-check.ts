/**
 * `forgetting-check`: did fine-tuning make the model forget general language? Scores the model before and
 * after on the same held-out general text, masked once with a seed so both see identical inputs (same rows,
 * same masked positions, same replacement tokens): masked-LM loss, perplexity and masked-token accuracy.
 * When the chosen measure got worse by more than `max_drop` the stage fails, as a failing test does
 * (unless `warn_only`). Writes `forgetting.json` into its out folder.
 */
import { mkdir, rm, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { type BackendChoice, initBackend, releaseBackend } from "../src/compute/backend.js"
import { compare, type Measures, type PerMeasure } from "../src/eval/forgetting.js"
import {
  type MaskedLmBatch,
  type MaskedLmScores,
  maskedLmBatches,
  scoreMaskedLm,
} from "../src/eval/scoring.js"
import { disposeBert } from "../src/model/index.js"
import { loadModelFrom } from "../src/train/model-dir.js"
import { deriveSeed, permutation, seededRng } from "../src/train/random.js"
import { openTokenData } from "../src/train/token-data.js"
import { type StageImplementation, StageInputError } from "./api.js"
import {
  type ForgettingMetric,
  type ForgettingOptions,
  forgettingOptions,
} from "./forgetting-check-options.js"
import { checkVocabulary, readModelInfo } from "./model-checks.js"

export type { Measures, PerMeasure } from "../src/eval/forgetting.js"
export { type ForgettingOptions, forgettingOptions } from "./forgetting-check-options.js"

/** `forgetting.json`. */
export interface ForgettingReport {
  readonly split: string
  /** rows scored, and the masked tokens in them */
  readonly rows: number
  readonly masked_tokens: number
  readonly mask_rate: number
  readonly seed: number
  readonly before: Measures
  readonly after: Measures
  /** how much worse after is than before: before - after for accuracy, after - before for loss and perplexity */
  readonly drop: Measures
  /** after / before for accuracy, before / after for loss and perplexity: 1 is no change, below 1 worse */
  readonly retention: PerMeasure
  readonly metric: ForgettingMetric
  readonly max_drop: number
  readonly passed: boolean
  readonly warn_only: boolean
  readonly backend: { readonly name: string; readonly versions: Readonly<Record<string, string>> }
}

const round = (x: number) => Number(x.toFixed(6))

const measures = (s: MaskedLmScores): Measures => ({
  masked_accuracy: round(s.masked_accuracy),
  loss: round(s.loss),
  perplexity: round(s.perplexity),
})

/** The rows to score: all of them, or a seeded sample of `max` in row order. */
const rowsToScore = (n: number, o: ForgettingOptions): Int32Array =>
  o.maxExamples === undefined || o.maxExamples >= n
    ? Int32Array.from({ length: n }, (_, i) => i)
    : permutation(n, seededRng(deriveSeed(o.seed, "sample")))
        .slice(0, o.maxExamples)
        .sort()

const score = async (
  ctx: Parameters<StageImplementation>[0],
  path: string,
  what: "before" | "after",
  batches: ReadonlyArray<MaskedLmBatch>,
): Promise<MaskedLmScores> => {
  const { model } = await loadModelFrom(resolve(ctx.root, path), what)
  try {
    const offset = what === "before" ? 0 : 1
    return await scoreMaskedLm(model, batches, (done, total) =>
      ctx.progress({ step: offset * total + done, total: 2 * total, model: what }),
    )
  } finally {
    disposeBert(model)
  }
}

const describe = (metric: ForgettingMetric, r: ForgettingReport): string => {
  const retention = r.retention[metric]
  return `${metric} went from ${r.before[metric]} to ${r.after[metric]}: a drop of ${r.drop[metric]}, more than max_drop ${r.max_drop}${retention === null ? "" : ` (retention ${(retention * 100).toFixed(1)}%)`}`
}

/** Runs a forgetting-check stage. */
export const run: StageImplementation = async (ctx) => {
  const o = forgettingOptions(ctx.args)
  const out = ctx.outs[ctx.outs.length - 1]!
  const data = await openTokenData(resolve(ctx.root, o.data), "data")
  if (data.masking === undefined)
    throw new StageInputError(
      `data: the vocabulary of ${o.data} has no [MASK] token, so no masked-LM scores can be taken\n   Tokenize the text with the models' vocabulary (a BERT vocabulary has [MASK]).`,
    )
  for (const what of ["before", "after"] as const)
    checkVocabulary(await readModelInfo(ctx.root, o[what], what), data.manifest, what, o.data)
  const split = await data.split(o.split)
  if (split.rows === 0)
    throw new StageInputError(
      `data: the ${o.split} split of ${o.data} has no rows\n   Give that split a share in the ingest stage's \`split\`, or check another \`split\`.`,
    )
  const batches = maskedLmBatches(split, rowsToScore(split.rows, o), {
    batchSize: o.batchSize,
    padId: data.manifest.special_ids.pad,
    vocab: data.masking,
    rate: o.maskRate,
    rng: seededRng(deriveSeed(o.seed, "mask")),
  })
  let backend: BackendChoice
  let before: MaskedLmScores
  let after: MaskedLmScores
  try {
    backend = await initBackend()
    process.stdout.write(`backend ${backend.name}: ${backend.reason}\n`)
    before = await score(ctx, o.before, "before", batches)
    after = await score(ctx, o.after, "after", batches)
  } finally {
    await releaseBackend()
  }
  const b = measures(before)
  const a = measures(after)
  const { drop, retention } = compare(b, a)
  const passed = drop[o.metric] <= o.maxDrop
  const report: ForgettingReport = {
    split: o.split,
    rows: before.rows,
    masked_tokens: before.masked_tokens,
    mask_rate: o.maskRate,
    seed: o.seed,
    before: b,
    after: a,
    drop,
    retention,
    metric: o.metric,
    max_drop: o.maxDrop,
    passed,
    warn_only: o.warnOnly,
    backend: { name: backend.name, versions: backend.versions },
  }
  const line = (m: Measures) =>
    `masked_accuracy ${m.masked_accuracy}, loss ${m.loss}, perplexity ${m.perplexity}`
  process.stdout.write(
    `${before.rows} rows, ${before.masked_tokens} masked tokens\nbefore: ${line(b)}\nafter:  ${line(a)}\n`,
  )
  ctx.progress({ metric: o.metric, before: b[o.metric], after: a[o.metric], drop: drop[o.metric], passed })
  if (!passed && !o.warnOnly)
    throw new StageInputError(
      `forgetting check failed: ${describe(o.metric, report)}\n   The fine-tuned model forgot general language. Lower the learning rate, freeze more layers, or add replay or l2sp in the train stage; or raise max_drop (or set warn_only: true) if this drop is acceptable.`,
    )
  if (!passed) {
    const warning = `forgetting beyond max_drop (warn_only): ${describe(o.metric, report)}`
    process.stdout.write(`warning: ${warning}\n`)
    ctx.progress({ warning })
  }
  await rm(out, { recursive: true, force: true })
  await mkdir(out, { recursive: true })
  await writeFile(join(out, "forgetting.json"), `${JSON.stringify(report, null, 2)}\n`)
}
