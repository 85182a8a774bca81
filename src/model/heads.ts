/**
 * The two heads and their losses. The masked-LM head runs only on the masked positions: their hidden
 * states are gathered first, so the vocabulary projection (the most expensive matmul in a small model)
 * costs [masked, vocab], not [batch * seq, vocab]. Its decoder is tied to the word embeddings, as in BERT.
 */
import * as tf from "@tensorflow/tfjs"
import { type BertModel, param } from "./bert.js"
import { dropoutFor } from "./dropout.js"
import {
  activation,
  type EncoderInput,
  encode,
  type ForwardOptions,
  gatherRows,
  layerNorm,
  linear,
  pool,
} from "./encoder.js"

/** The label value the losses skip, as in PyTorch's `CrossEntropyLoss`. */
export const IGNORE_INDEX = -100

/** Masked positions and their target ids, from a [batch, seq] label grid. */
export interface MaskedTargets {
  /** flat positions `b * seq + t`, ascending */
  readonly positions: Int32Array
  /** the original token id at each position */
  readonly targets: Int32Array
}

/** Pick the positions whose label is not `ignoreIndex` from row-major [batch, seq] labels. */
export const maskedTargets = (labels: ArrayLike<number>, ignoreIndex = IGNORE_INDEX): MaskedTargets => {
  const positions: Array<number> = []
  const targets: Array<number> = []
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!
    if (label !== ignoreIndex) {
      positions.push(i)
      targets.push(label)
    }
  }
  return { positions: Int32Array.from(positions), targets: Int32Array.from(targets) }
}

/**
 * Masked-LM logits at the given flat positions of `sequence` ([batch, seq, hidden]): [positions, vocab].
 * Transform (dense, activation, LayerNorm), then the tied decoder and its bias.
 */
export const mlmLogits = (model: BertModel, sequence: tf.Tensor3D, positions: tf.Tensor1D): tf.Tensor2D =>
  tf.tidy(() => {
    const c = model.config
    const [batch, seq, d] = sequence.shape
    const rows = gatherRows(sequence.reshape([batch * seq, d]), positions)
    const p = (n: string) => param(model, `cls.predictions.${n}`)
    const dense = linear(rows, p("transform.dense.weight"), p("transform.dense.bias"))
    const h = layerNorm(
      activation(c.hidden_act, dense),
      p("transform.LayerNorm.weight"),
      p("transform.LayerNorm.bias"),
      c.layer_norm_eps,
    ) as tf.Tensor2D
    return linear(h, param(model, "bert.embeddings.word_embeddings.weight"), p("bias"))
  })

/**
 * Classification logits from the pooled sequence (the first token, or the mean of the real tokens, as the
 * configuration's `classifier_pooling` says): [batch, num_labels].
 */
export const classifierLogits = (
  model: BertModel,
  sequence: tf.Tensor3D,
  options: ForwardOptions = {},
  attentionMask?: tf.Tensor2D,
): tf.Tensor2D =>
  tf.tidy(() => {
    const pooled = dropoutFor(options)(
      pool(model, sequence, attentionMask),
      model.config.hidden_dropout_prob,
      "classifier",
    )
    return linear(pooled, param(model, "classifier.weight"), param(model, "classifier.bias"))
  })

/**
 * Mean cross-entropy of `logits` [n, classes] against int32 `labels` [n], skipping labels equal to
 * `ignoreIndex`; 0 when every label is skipped.
 */
export const crossEntropy = (
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  ignoreIndex = IGNORE_INDEX,
): tf.Scalar =>
  tf.tidy(() => {
    const classes = logits.shape[1]
    const logProbs = tf.logSoftmax(logits)
    // oneHot of an ignored (out-of-range) label is a zero row, so ignored rows contribute nothing.
    const picked = tf.sum(tf.mul(logProbs, tf.oneHot(labels, classes)), 1)
    const valid = tf.notEqual(labels, ignoreIndex).toFloat()
    const count = tf.maximum(tf.sum(valid), 1)
    // 0 - x, not -x: a batch with nothing to score gives +0, not -0.
    return tf.div(tf.sub(0, tf.sum(tf.mul(picked, valid))), count) as tf.Scalar
  })

/** A masked-LM batch: inputs with some tokens replaced, and what was there. */
export interface MlmBatch extends EncoderInput {
  /** flat positions `b * seq + t` of the masked tokens, int32 [masked] */
  readonly positions: tf.Tensor1D
  /** the original ids at those positions, int32 [masked] */
  readonly targets: tf.Tensor1D
}

/** The masked-LM loss of a batch (encoder and head in one call). */
export const mlmLoss = (model: BertModel, batch: MlmBatch, options: ForwardOptions = {}): tf.Scalar =>
  tf.tidy(() => crossEntropy(mlmLogits(model, encode(model, batch, options), batch.positions), batch.targets))

/** A classification batch: inputs and one int32 label per sequence. */
export interface ClassificationBatch extends EncoderInput {
  readonly labels: tf.Tensor1D
}

/** The classification loss of a batch (encoder and head in one call). */
export const classificationLoss = (
  model: BertModel,
  batch: ClassificationBatch,
  options: ForwardOptions = {},
): tf.Scalar =>
  tf.tidy(() =>
    crossEntropy(
      classifierLogits(model, encode(model, batch, options), options, batch.attentionMask),
      batch.labels,
    ),
  )

/** Class probabilities for a batch, dropout off: [batch, num_labels]. */
export const classify = (model: BertModel, input: EncoderInput): tf.Tensor2D =>
  tf.tidy(() => tf.softmax(classifierLogits(model, encode(model, input), {}, input.attentionMask)))
