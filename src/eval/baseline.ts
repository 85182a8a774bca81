/**
 * The cheap baseline a fine-tuned model should beat: a bag of words (TF-IDF over the token ids of the
 * training split) and multinomial logistic regression with an L2 penalty. If a transformer does no better
 * than this, its fine-tuning bought nothing.
 */
import type { SplitArrays } from "../../stages/tokenize-format.js"
import { fitLogistic, predictLogistic } from "./logistic.js"
import { fitTfidf, tfidfRows } from "./tfidf.js"

/** What the baseline was and how its fit went. */
export interface BaselineInfo {
  readonly method: "tf-idf + logistic regression (L2)"
  readonly train_rows: number
  /** token ids seen in training, i.e. the features */
  readonly features: number
  /** the penalty's strength on the mean loss: 1 / train_rows (scikit-learn's C = 1) */
  readonly l2: number
  readonly iterations: number
  readonly converged: boolean
}

/** The baseline's class probabilities on `test` (row-major `[rows, classes]`), fitted on `train`. */
export const bagOfWordsBaseline = (
  train: SplitArrays,
  test: SplitArrays,
  options: {
    readonly vocabSize: number
    readonly specialIds: ReadonlyArray<number>
    readonly classes: number
  },
): { readonly probs: Float64Array; readonly info: BaselineInfo } => {
  if (train.labels === null) throw new Error("the training split has no labels")
  const tfidf = fitTfidf(train, options.vocabSize, options.specialIds)
  const x = tfidfRows(tfidf, train, options.specialIds)
  const l2 = 1 / Math.max(1, train.rows)
  const model = fitLogistic(x, train.labels, options.classes, { l2 })
  const probs = predictLogistic(model, tfidfRows(tfidf, test, options.specialIds))
  return {
    probs,
    info: {
      method: "tf-idf + logistic regression (L2)",
      train_rows: train.rows,
      features: x.features,
      l2,
      iterations: model.iterations,
      converged: model.converged,
    },
  }
}
