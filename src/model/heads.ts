/**
 * The two heads and their losses. The masked-LM head runs only on the masked positions: their hidden
 * states are gathered first, so the vocabulary projection (the most expensive matmul in a small model)
 * costs [masked, vocab], not [batch * seq, vocab]. Its decoder is tied to the word embeddings, as in BERT.
 *
 * The one-call forms (`classificationLogits`, `maskedLmLogits` and the losses) ask the encoder for just the
 * rows their head reads (`encodeRows`): the first token's with "cls" pooling, the masked positions for masked
 * LM; the encoder's last block then computes nothing else but keys and values.
 */
import * as tf from "@tensorflow/tfjs"
import { type BertModel, param } from "./bert.js"
import { dropoutFor } from "./dropout.js"
import {
  activation,
  type EncoderInput,
  encode,
  encodeRows,
  type ForwardOptions,
  gatherRows,
  layerNorm,
  linear,
  pool,
  pooler,
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
 * The masked-LM head on hidden states [n, hidden]: the transform (dense, activation, LayerNorm), then the tied
 * decoder and its bias, [n, vocab].
 */
const mlmHead = (model: BertModel, rows: tf.Tensor2D): tf.Tensor2D => {
  const c = model.config
  const p = (n: string) => param(model, `cls.predictions.${n}`)
  const dense = linear(rows, p("transform.dense.weight"), p("transform.dense.bias"))
  const h = layerNorm(
    activation(c.hidden_act, dense),
    p("transform.LayerNorm.weight"),
    p("transform.LayerNorm.bias"),
    c.layer_norm_eps,
  ) as tf.Tensor2D
  return linear(h, param(model, "bert.embeddings.word_embeddings.weight"), p("bias"))
}

/** Masked-LM logits at the given flat positions of `sequence` ([batch, seq, hidden]): [positions, vocab]. */
export const mlmLogits = (model: BertModel, sequence: tf.Tensor3D, positions: tf.Tensor1D): tf.Tensor2D =>
  tf.tidy(() => {
    const [batch, seq, d] = sequence.shape
    return mlmHead(model, gatherRows(sequence.reshape([batch * seq, d]), positions))
  })

/**
 * Masked-LM logits of a batch at the flat positions `positions` (`b * seq + t`), encoder and head in one call:
 * [positions, vocab]. The encoder's last block computes only those rows (`encodeRows`).
 */
export const maskedLmLogits = (
  model: BertModel,
  input: EncoderInput,
  positions: Int32Array,
  options: ForwardOptions = {},
): tf.Tensor2D => tf.tidy(() => mlmHead(model, encodeRows(model, input, positions, options)))

/** The classifier on pooled states [batch, hidden]: dropout, then the linear layer, [batch, num_labels]. */
const classifierHead = (model: BertModel, pooled: tf.Tensor2D, options: ForwardOptions): tf.Tensor2D =>
  linear(
    dropoutFor(options)(pooled, model.config.hidden_dropout_prob, "classifier"),
    param(model, "classifier.weight"),
    param(model, "classifier.bias"),
  )

/**
 * Classification logits from the pooled sequence (the first token, or the mean of the real tokens, as the
 * configuration's `classifier_pooling` says): [batch, num_labels].
 */
export const classifierLogits = (
  model: BertModel,
  sequence: tf.Tensor3D,
  options: ForwardOptions = {},
  attentionMask?: tf.Tensor2D,
): tf.Tensor2D => tf.tidy(() => classifierHead(model, pool(model, sequence, attentionMask), options))

/**
 * Classification logits of a batch, encoder and head in one call: [batch, num_labels]. With "cls" pooling the
 * encoder's last block computes only each sequence's first token (`encodeRows`); "mean" pooling reads every
 * token's state, and the padding is left out by the attention mask.
 */
export const classificationLogits = (
  model: BertModel,
  input: EncoderInput,
  options: ForwardOptions = {},
): tf.Tensor2D =>
  tf.tidy(() => {
    if (model.config.classifier_pooling === "mean")
      return classifierLogits(model, encode(model, input, options), options, input.attentionMask)
    const [batch, seq] = input.inputIds.shape
    const first = Int32Array.from({ length: batch }, (_, b) => b * seq)
    return classifierHead(model, pooler(model, encodeRows(model, input, first, options)), options)
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
  /** flat positions `b * seq + t` of the masked tokens [masked], on the host: they shape the last block */
  readonly positions: Int32Array
  /** the original ids at those positions, int32 [masked] */
  readonly targets: tf.Tensor1D
}

/** The masked-LM loss of a batch (encoder and head in one call). */
export const mlmLoss = (model: BertModel, batch: MlmBatch, options: ForwardOptions = {}): tf.Scalar =>
  tf.tidy(() => crossEntropy(maskedLmLogits(model, batch, batch.positions, options), batch.targets))

/** A classification batch: inputs and one int32 label per sequence. */
export interface ClassificationBatch extends EncoderInput {
  readonly labels: tf.Tensor1D
}

/** The classification loss of a batch (encoder and head in one call). */
export const classificationLoss = (
  model: BertModel,
  batch: ClassificationBatch,
  options: ForwardOptions = {},
): tf.Scalar => tf.tidy(() => crossEntropy(classificationLogits(model, batch, options), batch.labels))

/** Class probabilities for a batch, dropout off: [batch, num_labels]. */
export const classify = (model: BertModel, input: EncoderInput): tf.Tensor2D =>
  tf.tidy(() => tf.softmax(classificationLogits(model, input)))
