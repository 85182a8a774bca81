/**
 * A predictor's answers on a labeled split, from its class probabilities: the predicted label of each row,
 * the classification scores and the mean cross-entropy; and which rows to show a person (where models
 * disagree, or where one is wrong).
 */
import { argmaxRow, type ClassificationScores, classificationScores, meanCrossEntropy } from "./metrics.js"

/** One predictor's scores in metrics.json: the classification scores and the mean cross-entropy. */
export interface PredictorMetrics extends ClassificationScores {
  readonly loss: number
}

/** Row-major class probabilities `[rows, k]` and per-row predictions and loss, from any predictor. */
export interface Predicted {
  readonly probs: Float32Array | Float64Array
  readonly predicted: Int32Array
  readonly metrics: PredictorMetrics
}

/** Predictions and metrics from probabilities (`logProbs`: natural logs, for an exact loss when given). */
export const predictedFrom = (
  probs: Float32Array | Float64Array,
  truth: Int32Array,
  labels: ReadonlyArray<string>,
  logProbs?: Float32Array,
): Predicted => {
  const k = labels.length
  const predicted = Int32Array.from({ length: truth.length }, (_, r) => argmaxRow(probs, r, k))
  let loss = meanCrossEntropy(probs, truth, k)
  if (logProbs !== undefined) {
    loss = 0
    for (let r = 0; r < truth.length; r++) loss -= logProbs[r * k + truth[r]!]!
    loss = truth.length === 0 ? 0 : loss / truth.length
  }
  return { probs, predicted, metrics: { ...classificationScores(truth, predicted, labels), loss } }
}

/**
 * The examples to list: with two or more models, the rows where their predictions differ, those whose
 * models differ most in the probability of the true label first; with one model, the rows it gets wrong,
 * the most confident mistakes first. Ties go in row order.
 */
export const pickExamples = (
  models: ReadonlyArray<Predicted>,
  truth: Int32Array,
  k: number,
): { readonly kind: "disagreements" | "errors"; readonly rows: ReadonlyArray<number> } => {
  const pTrue = (m: Predicted, r: number) => m.probs[r * k + truth[r]!]!
  const rows: Array<{ row: number; key: number }> = []
  if (models.length >= 2) {
    for (let r = 0; r < truth.length; r++) {
      if (models.every((m) => m.predicted[r] === models[0]!.predicted[r])) continue
      const ps = models.map((m) => pTrue(m, r))
      rows.push({ row: r, key: -(Math.max(...ps) - Math.min(...ps)) })
    }
  } else {
    const m = models[0]!
    for (let r = 0; r < truth.length; r++)
      if (m.predicted[r] !== truth[r]) rows.push({ row: r, key: pTrue(m, r) })
  }
  rows.sort((a, b) => a.key - b.key || a.row - b.row)
  return { kind: models.length >= 2 ? "disagreements" : "errors", rows: rows.map((x) => x.row) }
}
