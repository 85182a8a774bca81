/**
 * Scoring models on a tokenized split, dropout off: class log-probabilities of a classifier for every row,
 * and masked-LM loss, perplexity and accuracy on masked inputs drawn once and shared, so two models are
 * compared on exactly the same rows and the same masked positions.
 *
 * Rows are batched longest first: with dynamic padding (train/batches.ts) a batch then pays only for rows
 * of about its own length. A row's scores do not depend on which batch it lands in (padding is masked out).
 */
import * as tf from "@tensorflow/tfjs"
import type { SplitArrays } from "../../stages/tokenize-format.js"
import {
  type BertModel,
  classificationLogits,
  crossEntropy,
  type EncoderInput,
  maskedLmLogits,
} from "../model/index.js"
import { type Batch, batchIndices, batchOf } from "../train/batches.js"
import { type MaskedBatch, type MaskingVocab, maskBatch } from "../train/masking.js"
import type { Rng } from "../train/random.js"

/** Called after each batch with the rows done so far and the total. */
export type OnProgress = (done: number, total: number) => void

/** `rows` ordered longest first, ties in index order (a stable, deterministic order). */
export const longestFirst = (split: SplitArrays, rows: ArrayLike<number>): Int32Array =>
  Int32Array.from(rows).sort((a, b) => split.lengths[b]! - split.lengths[a]! || a - b)

/** A batch's encoder input as tensors (optionally with other, e.g. masked, ids). */
export const inputOf = (b: Batch, inputIds: Int32Array = b.inputIds): EncoderInput => ({
  inputIds: tf.tensor2d(inputIds, [b.rows, b.cols], "int32"),
  attentionMask: tf.tensor2d(b.attentionMask, [b.rows, b.cols], "int32"),
})

/**
 * The classifier's log-probabilities for every row of `split`, row-major `[rows, num_labels]`, in the
 * split's row order.
 */
export const classifierLogProbs = async (
  model: BertModel,
  split: SplitArrays,
  options: { readonly batchSize: number; readonly padId: number; readonly onProgress?: OnProgress },
): Promise<Float32Array> => {
  const k = model.config.num_labels
  const out = new Float32Array(split.rows * k)
  const all = Int32Array.from({ length: split.rows }, (_, i) => i)
  let done = 0
  for (const indices of batchIndices(longestFirst(split, all), options.batchSize)) {
    const b = batchOf(split, indices, options.padId)
    const logProbs = tf.tidy(() => {
      return tf.logSoftmax(classificationLogits(model, inputOf(b)))
    })
    const values = await logProbs.data()
    logProbs.dispose()
    for (let r = 0; r < b.rows; r++) out.set(values.subarray(r * k, r * k + k), indices[r]! * k)
    done += b.rows
    options.onProgress?.(done, split.rows)
  }
  return out
}

/** A batch with its masked inputs, ready to score any number of models on. */
export interface MaskedLmBatch {
  readonly batch: Batch
  readonly masked: MaskedBatch
}

/**
 * The masked batches of `rows` (indices into `split`), masked with `rng`. The masks of a row do not depend
 * on the batch size: one generator runs through the rows in the same order whatever the batching.
 */
export const maskedLmBatches = (
  split: SplitArrays,
  rows: ArrayLike<number>,
  options: {
    readonly batchSize: number
    readonly padId: number
    readonly vocab: MaskingVocab
    readonly rate: number
    readonly rng: Rng
  },
): Array<MaskedLmBatch> =>
  batchIndices(longestFirst(split, rows), options.batchSize).map((indices) => {
    const batch = batchOf(split, indices, options.padId)
    return { batch, masked: maskBatch(batch, options.vocab, { rate: options.rate }, options.rng) }
  })

/** Masked-LM scores: mean cross-entropy over the masked tokens, its exponential, and top-1 accuracy. */
export interface MaskedLmScores {
  readonly loss: number
  readonly perplexity: number
  readonly masked_accuracy: number
  /** masked tokens scored */
  readonly masked_tokens: number
  /** rows scored */
  readonly rows: number
}

/** Score `model` on the masked batches (every masked token weighs the same). */
export const scoreMaskedLm = async (
  model: BertModel,
  batches: ReadonlyArray<MaskedLmBatch>,
  onProgress?: OnProgress,
): Promise<MaskedLmScores> => {
  let lossSum = 0
  let correct = 0
  let tokens = 0
  let rows = 0
  const total = batches.reduce((n, b) => n + b.batch.rows, 0)
  for (const { batch, masked } of batches) {
    const m = masked.positions.length
    rows += batch.rows
    if (m > 0) {
      const [loss, hits] = tf.tidy(() => {
        const logits = maskedLmLogits(model, inputOf(batch, masked.inputIds), masked.positions)
        const targets = tf.tensor1d(masked.targets, "int32")
        const hit = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), targets), "int32"))
        return [crossEntropy(logits, targets), hit]
      })
      const [l, h] = await Promise.all([loss.data(), hits.data()])
      tf.dispose([loss, hits])
      lossSum += l[0]! * m
      correct += h[0]!
      tokens += m
    }
    onProgress?.(rows, total)
  }
  const loss = tokens === 0 ? 0 : lossSum / tokens
  return {
    loss,
    perplexity: Math.exp(loss),
    masked_accuracy: tokens === 0 ? 0 : correct / tokens,
    masked_tokens: tokens,
    rows,
  }
}
