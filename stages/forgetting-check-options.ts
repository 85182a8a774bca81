/**
 * `with:` of a forgetting-check stage, typed. Light, so the pipeline loader can run the same reading before
 * anything runs (the kind's `check` in stages/registry.ts).
 */

/** The measure the gate compares. */
export type ForgettingMetric = "masked_accuracy" | "loss" | "perplexity"

/** `with:` of a forgetting-check stage, typed. */
export interface ForgettingOptions {
  readonly before: string
  readonly after: string
  readonly data: string
  readonly split: string
  readonly metric: ForgettingMetric
  readonly maxDrop: number
  readonly warnOnly: boolean
  readonly maskRate: number
  readonly seed: number
  /** score at most this many rows (a seeded sample); undefined: every row of the split */
  readonly maxExamples: number | undefined
  readonly batchSize: number
}

const trim = (p: string) => p.replace(/\/+$/, "")

/** Reads `with:` (already checked against the schema, defaults filled in). */
export const forgettingOptions = (args: Readonly<Record<string, unknown>>): ForgettingOptions => ({
  before: trim(String(args.before)),
  after: trim(String(args.after)),
  data: trim(String(args.data)),
  split: typeof args.split === "string" ? args.split : "test",
  metric: args.metric === "loss" || args.metric === "perplexity" ? args.metric : "masked_accuracy",
  maxDrop: Number(args.max_drop),
  warnOnly: args.warn_only === true,
  maskRate: typeof args.mask_rate === "number" ? args.mask_rate : 0.15,
  seed: typeof args.seed === "number" ? args.seed : 0,
  maxExamples: typeof args.max_examples === "number" ? args.max_examples : undefined,
  batchSize: typeof args.batch_size === "number" ? args.batch_size : 32,
})
