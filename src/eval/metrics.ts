/**
 * Classification metrics from predicted and true label ids: the confusion matrix, accuracy, and per-label
 * and macro-averaged precision, recall and F1, as scikit-learn's `classification_report` computes them
 * (a label never predicted has precision 0, a label absent from the data recall 0, as sklearn's
 * `zero_division=0`; the macro average is the unweighted mean over every label, present or not).
 */

/** Precision, recall and F1 of one label, and how many examples carry it. */
export interface LabelScores {
  readonly precision: number
  readonly recall: number
  readonly f1: number
  readonly support: number
}

/** The scores of a classifier on a labeled split. */
export interface ClassificationScores {
  readonly examples: number
  readonly accuracy: number
  readonly precision_macro: number
  readonly recall_macro: number
  readonly f1_macro: number
  /** per label name, in id order */
  readonly per_label: Readonly<Record<string, LabelScores>>
  /** `confusion[true][predicted]` counts, rows and columns in label id order */
  readonly confusion: ReadonlyArray<ReadonlyArray<number>>
}

/** `confusion[t][p]`: how many examples of label `t` were predicted `p`. */
export const confusionMatrix = (
  truth: ArrayLike<number>,
  predicted: ArrayLike<number>,
  labels: number,
): number[][] => {
  if (truth.length !== predicted.length)
    throw new Error(`${truth.length} true labels but ${predicted.length} predictions`)
  const m = Array.from({ length: labels }, () => new Array<number>(labels).fill(0))
  for (let i = 0; i < truth.length; i++) {
    const t = truth[i]!
    const p = predicted[i]!
    if (t < 0 || t >= labels || p < 0 || p >= labels)
      throw new Error(`label id out of range at example ${i}: true ${t}, predicted ${p} (${labels} labels)`)
    m[t]![p]! += 1
  }
  return m
}

const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b)

/** Every score, from a confusion matrix and the label names (in id order). */
export const scoresFromConfusion = (
  confusion: ReadonlyArray<ReadonlyArray<number>>,
  labelNames: ReadonlyArray<string>,
): ClassificationScores => {
  const k = labelNames.length
  let total = 0
  let correct = 0
  const perLabel: Record<string, LabelScores> = {}
  let sumP = 0
  let sumR = 0
  let sumF = 0
  for (let c = 0; c < k; c++) {
    const row = confusion[c]!
    const tp = row[c]!
    const support = row.reduce((a, b) => a + b, 0)
    let predicted = 0
    for (let t = 0; t < k; t++) predicted += confusion[t]![c]!
    total += support
    correct += tp
    const precision = ratio(tp, predicted)
    const recall = ratio(tp, support)
    const f1 = ratio(2 * precision * recall, precision + recall)
    perLabel[labelNames[c]!] = { precision, recall, f1, support }
    sumP += precision
    sumR += recall
    sumF += f1
  }
  return {
    examples: total,
    accuracy: ratio(correct, total),
    precision_macro: ratio(sumP, k),
    recall_macro: ratio(sumR, k),
    f1_macro: ratio(sumF, k),
    per_label: perLabel,
    confusion: confusion.map((r) => [...r]),
  }
}

/** Every score of `predicted` against `truth`. */
export const classificationScores = (
  truth: ArrayLike<number>,
  predicted: ArrayLike<number>,
  labelNames: ReadonlyArray<string>,
): ClassificationScores =>
  scoresFromConfusion(confusionMatrix(truth, predicted, labelNames.length), labelNames)

/** The index of the largest of `k` values at `row * k` (the first one on a tie). */
export const argmaxRow = (values: ArrayLike<number>, row: number, k: number): number => {
  let best = 0
  for (let c = 1; c < k; c++) if (values[row * k + c]! > values[row * k + best]!) best = c
  return best
}

/** Mean cross-entropy (natural log) of row-major probabilities `[rows, k]` against the true label ids. */
export const meanCrossEntropy = (probs: ArrayLike<number>, truth: ArrayLike<number>, k: number): number => {
  if (truth.length === 0) return 0
  let sum = 0
  // a probability of exactly 0 (float underflow) would make the mean infinite; clip as sklearn's log_loss does
  for (let i = 0; i < truth.length; i++) sum -= Math.log(Math.max(probs[i * k + truth[i]!]!, 1e-15))
  return sum / truth.length
}
