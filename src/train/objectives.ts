/**
 * What the training stages minimise, built from the model's heads (src/model/heads.ts) and a tokenized
 * split: the classification loss of a batch, the masked-LM loss of a batch, and two forgetting
 * mitigations layered on top of an objective:
 *
 * - L2-SP (Li et al. 2018): `weight / 2 * sum ||w - w0||^2` over the trained parameters the pretrained model
 *   had (not the new classifier head), pulling weights toward their pretrained values;
 * - replay: at a seeded `fraction` of the steps, the masked-LM loss of a batch of general text is added with
 *   `weight`, so the encoder keeps practising its general task while it learns the new one.
 */
import * as tf from "@tensorflow/tfjs"
import type { SplitArrays } from "../../stages/tokenize-format.js"
import { classifierLogProbs, inputOf, maskedLmBatches, scoreMaskedLm } from "../eval/scoring.js"
import { type BertModel, classificationLoss, mlmLoss } from "../model/index.js"
import { batchOf } from "./batches.js"
import type { Objective } from "./loop.js"
import { type MaskingVocab, maskBatch } from "./masking.js"
import { deriveSeed, seededRng } from "./random.js"

/** Classification on a labeled split. */
export const classificationObjective = (
  model: BertModel,
  train: SplitArrays,
  validation: SplitArrays | undefined,
  padId: number,
  seed: number,
  evalBatch = 64,
): Objective => {
  if (train.labels === null) throw new Error("the training split has no labels")
  return {
    rows: train.rows,
    loss: (indices, step) => {
      const b = batchOf(train, indices, padId)
      const x = inputOf(b)
      return classificationLoss(
        model,
        { ...x, labels: tf.tensor1d(b.labels!, "int32") },
        { dropoutSeed: deriveSeed(seed, `dropout/${step}`) >>> 1 },
      )
    },
    ...(validation === undefined || validation.rows === 0
      ? {}
      : { validate: () => scoreClassifier(model, validation, padId, evalBatch) }),
  }
}

/** Mean loss and accuracy of the classifier on a labeled split (dropout off); see src/eval/scoring.ts. */
export const scoreClassifier = async (
  model: BertModel,
  split: SplitArrays,
  padId: number,
  batchSize = 64,
): Promise<{ loss: number; accuracy: number }> => {
  const logProbs = await classifierLogProbs(model, split, { batchSize, padId })
  const k = model.config.num_labels
  let lossSum = 0
  let correct = 0
  for (let r = 0; r < split.rows; r++) {
    const row = logProbs.subarray(r * k, r * k + k)
    const label = split.labels![r]!
    lossSum -= row[label]!
    let best = 0
    for (let c = 1; c < k; c++) if (row[c]! > row[best]!) best = c
    if (best === label) correct += 1
  }
  return { loss: lossSum / Math.max(1, split.rows), accuracy: correct / Math.max(1, split.rows) }
}

/** The masked batch for `indices` at `step`, masked with a seed derived from `step` (see loop.ts). */
const maskedFor = (
  split: SplitArrays,
  indices: ArrayLike<number>,
  padId: number,
  masking: MaskingVocab,
  rate: number,
  seed: number,
) => {
  const b = batchOf(split, indices, padId)
  const m = maskBatch(b, masking, { rate }, seededRng(seed))
  return {
    ...inputOf(b, m.inputIds),
    positions: m.positions,
    targets: tf.tensor1d(m.targets, "int32"),
    masked: m.positions.length,
  }
}

/** Masked-LM on an (unlabeled) split. */
export const mlmObjective = (
  model: BertModel,
  train: SplitArrays,
  validation: SplitArrays | undefined,
  padId: number,
  masking: MaskingVocab,
  rate: number,
  seed: number,
  evalBatch = 64,
): Objective => ({
  rows: train.rows,
  loss: (indices, step) => {
    const batch = maskedFor(train, indices, padId, masking, rate, deriveSeed(seed, `mask/${step}`))
    return mlmLoss(model, batch, { dropoutSeed: deriveSeed(seed, `dropout/${step}`) >>> 1 })
  },
  ...(validation === undefined || validation.rows === 0
    ? {}
    : {
        validate: () => Promise.resolve(scoreMlm(model, validation, padId, masking, rate, seed, evalBatch)),
      }),
})

/**
 * Masked-LM loss (mean over masked tokens), perplexity and masked-token accuracy on a split, dropout off,
 * with masks drawn from `seed` (as the forgetting check draws them): the same rows and seed give the same
 * masks for any model.
 */
export const scoreMlm = async (
  model: BertModel,
  split: SplitArrays,
  padId: number,
  masking: MaskingVocab,
  rate: number,
  seed: number,
  batchSize = 64,
): Promise<{ loss: number; perplexity: number; accuracy: number }> => {
  const rows = Int32Array.from({ length: split.rows }, (_, i) => i)
  const batches = maskedLmBatches(split, rows, {
    batchSize,
    padId,
    vocab: masking,
    rate,
    rng: seededRng(seed),
  })
  const s = await scoreMaskedLm(model, batches)
  return { loss: s.loss, perplexity: s.perplexity, accuracy: s.masked_accuracy }
}

/** `objective` plus the L2-SP penalty toward `anchor` (pretrained values by name) with `weight`. */
export const withL2sp = (
  objective: Objective,
  params: ReadonlyMap<string, tf.Variable>,
  anchor: ReadonlyMap<string, tf.Tensor>,
  weight: number,
): Objective => {
  const pairs = [...params].filter(([n]) => anchor.has(n)).map(([n, v]) => [v, anchor.get(n)!] as const)
  return {
    ...objective,
    loss: (indices, step) =>
      tf.tidy(() => {
        const base = objective.loss(indices, step)
        if (pairs.length === 0 || weight === 0) return base
        const penalty = tf.addN(pairs.map(([v, w0]) => tf.sum(tf.square(tf.sub(v, w0)))))
        return tf.add(base, tf.mul(penalty, weight / 2)) as tf.Scalar
      }),
  }
}

/** `objective` plus, at a seeded `fraction` of the steps, `weight` x the masked-LM loss of a general batch. */
export const withReplay = (
  objective: Objective,
  model: BertModel,
  general: SplitArrays,
  padId: number,
  masking: MaskingVocab,
  options: { fraction: number; weight: number; rate: number; batchSize: number; seed: number },
): Objective => ({
  ...objective,
  loss: (indices, step) =>
    tf.tidy(() => {
      const base = objective.loss(indices, step)
      const rng = seededRng(deriveSeed(options.seed, `replay/${step}`))
      if (general.rows === 0 || rng.float() >= options.fraction) return base
      const rows = Array.from({ length: Math.min(options.batchSize, general.rows) }, () =>
        rng.int(0, general.rows - 1),
      )
      const batch = maskedFor(
        general,
        rows,
        padId,
        masking,
        options.rate,
        deriveSeed(options.seed, `replay-mask/${step}`),
      )
      const replay = mlmLoss(model, batch, {
        dropoutSeed: deriveSeed(options.seed, `replay-dropout/${step}`) >>> 1,
      })
      return tf.add(base, tf.mul(replay, options.weight)) as tf.Scalar
    }),
})
