/**
 * Comparing a model's masked-LM measures before and after fine-tuning, each turned so that a positive drop
 * means "worse": accuracy falls, loss and perplexity rise.
 */

/** The three measures of one model. */
export interface Measures {
  readonly masked_accuracy: number
  readonly loss: number
  readonly perplexity: number
}

/** Per measure, a number or null (a ratio with a zero denominator). */
export type PerMeasure = { readonly [K in keyof Measures]: number | null }

const round = (x: number) => Number(x.toFixed(6))
const ratio = (a: number, b: number) => (b === 0 ? null : round(a / b))

/** Drop and retention of each measure, in the direction of "worse". */
export const compare = (before: Measures, after: Measures): { drop: Measures; retention: PerMeasure } => ({
  drop: {
    masked_accuracy: round(before.masked_accuracy - after.masked_accuracy),
    loss: round(after.loss - before.loss),
    perplexity: round(after.perplexity - before.perplexity),
  },
  retention: {
    masked_accuracy: ratio(after.masked_accuracy, before.masked_accuracy),
    loss: ratio(before.loss, after.loss),
    perplexity: ratio(before.perplexity, after.perplexity),
  },
})
