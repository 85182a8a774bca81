/**
 * The BERT encoder's forward pass in TensorFlow.js core ops, computing what Transformers' `BertModel`
 * computes (post-LayerNorm blocks, erf GELU, additive attention mask of float32's minimum), so the same
 * weights give the same numbers up to float rounding.
 *
 * Linear weights are `[out, in]` (PyTorch's layout): `x W^T + b` is one `matMul` with `transposeB`. In
 * training that costs the same as an `[in, out]` weight: either way one of the three products (forward,
 * input gradient, weight gradient) has a transposed right-hand side, and on the wasm backend the two
 * layouts measure within noise of each other (bench/encoder-size.mjs --only layout). Keeping PyTorch's
 * layout means checkpoints load without a transpose and save back byte for byte.
 */
import * as tf from "@tensorflow/tfjs"
import { type BertModel, param } from "./bert.js"
import type { HiddenAct } from "./config.js"
import { type Dropout, dropoutFor } from "./dropout.js"

/** One batch of token ids, `[batch, seq]`, int32. */
export interface EncoderInput {
  readonly inputIds: tf.Tensor2D
  /** 1 for real tokens, 0 for padding; all ones when left out */
  readonly attentionMask?: tf.Tensor2D
  /** segment ids; all zeros when left out */
  readonly tokenTypeIds?: tf.Tensor2D
}

/** How a forward pass runs. */
export interface ForwardOptions {
  /**
   * Turns dropout on (training), seeded: the same seed gives the same dropout masks. Use a fresh seed per
   * step (e.g. base seed + step). Left out, dropout is off (evaluation).
   */
  readonly dropoutSeed?: number
  /**
   * Has `encodeRows` compute the last block for every token, then pick the rows: the same numbers up to float
   * rounding, with more arithmetic. For like-for-like comparisons (bench/throughput.mjs) and tests.
   */
  readonly allRows?: boolean
}

/** float32's most negative value: what Transformers adds to the scores of masked-out keys. */
const MASKED_SCORE = -3.4028234663852886e38

/**
 * `table[indices]` whose gradient is a scatter-add into the table. Equivalent to `tf.gather`, whose
 * gradient needs the `UnsortedSegmentSum` kernel that the wasm backend lacks; `ScatterNd` is on every
 * backend and sums duplicate indices.
 */
export const gatherRows = (table: tf.Tensor2D, indices: tf.Tensor1D): tf.Tensor2D => {
  const f = tf.customGrad((t, save) => {
    const idx = indices as tf.Tensor1D
    ;(save as tf.GradSaveFunc)([idx])
    return {
      value: tf.gather(t as tf.Tensor2D, idx),
      gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) =>
        tf.scatterND(saved[0]!.expandDims(1), dy, (t as tf.Tensor).shape),
    }
  })
  return f(table) as tf.Tensor2D
}

/** `x W^T + b` for `x` [n, in], `w` [out, in], `b` [out]. */
export const linear = (x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): tf.Tensor2D =>
  tf.add(tf.matMul(x, w as tf.Tensor2D, false, true), b)

/**
 * LayerNorm over the last axis, with biased variance as PyTorch computes it. The backward pass is written out
 * (dx = rstd · (g - mean(g) - x̂ · mean(g · x̂)) with g = dy · gamma) rather than differentiated through
 * `moments`: about half the ops, on the widest tensors of a block.
 */
export const layerNorm = <T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, eps: number): T => {
  const lead = x.shape.slice(0, -1).map((_, i) => i)
  const f = tf.customGrad((x, gamma, beta, save) => {
    const { mean, variance } = tf.moments(x as tf.Tensor, -1, true)
    const rstd = tf.rsqrt(tf.add(variance, eps))
    const xHat = tf.mul(tf.sub(x as tf.Tensor, mean), rstd)
    ;(save as tf.GradSaveFunc)([xHat, rstd, gamma as tf.Tensor])
    return {
      value: tf.add(tf.mul(xHat, gamma as tf.Tensor), beta as tf.Tensor),
      gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
        const [xHat, rstd, gamma] = saved as [tf.Tensor, tf.Tensor, tf.Tensor]
        const g = tf.mul(dy, gamma)
        const centred = tf.sub(g, tf.mean(g, -1, true))
        const dx = tf.mul(rstd, tf.sub(centred, tf.mul(xHat, tf.mean(tf.mul(g, xHat), -1, true))))
        return [dx, tf.sum(tf.mul(dy, xHat), lead), tf.sum(dy, lead)]
      },
    }
  })
  return f(x, gamma, beta) as T
}

const SQRT_HALF = Math.SQRT1_2
const GELU_TANH_C = Math.sqrt(2 / Math.PI)
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI)

/**
 * erf GELU, x · Φ(x), with its derivative written out: Φ(x) + x · φ(x). φ(x) = exp(-x²/2) / √(2π) is taken as
 * s / (1 - s) with s = sigmoid(-x²/2) (exact for the non-positive exponent): on wasm `Sigmoid` is XNNPACK's
 * vectorised kernel and `Exp` a scalar loop 8x slower, and autodiff through `erf` costs an `Exp` and more.
 * The forward pass computes the values it always did.
 */
const gelu = tf.customGrad((x, save) => {
  const cdf = tf.mul(tf.add(tf.erf(tf.mul(x as tf.Tensor, SQRT_HALF)), 1), 0.5)
  ;(save as tf.GradSaveFunc)([x as tf.Tensor, cdf])
  return {
    value: tf.mul(x as tf.Tensor, cdf),
    gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
      const [x, cdf] = saved as [tf.Tensor, tf.Tensor]
      const s = tf.sigmoid(tf.mul(tf.square(x), -0.5))
      const pdf = tf.mul(tf.div(s, tf.sub(1, s)), INV_SQRT_2PI)
      return tf.mul(dy, tf.add(cdf, tf.mul(x, pdf)))
    },
  }
})

/** The activation by Hugging Face's name. */
export const activation = (act: HiddenAct, x: tf.Tensor): tf.Tensor => {
  switch (act) {
    case "gelu":
      return gelu(x)
    case "gelu_new":
    case "gelu_pytorch_tanh":
      return tf.mul(
        tf.mul(x, 0.5),
        tf.add(tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), GELU_TANH_C)), 1),
      )
    case "relu":
      return tf.relu(x)
  }
}

/** Token, position and token-type embeddings, summed and normalised: [batch * seq, hidden]. */
const embed = (model: BertModel, input: EncoderInput, dropout: Dropout): tf.Tensor2D => {
  const c = model.config
  const [batch, seq] = input.inputIds.shape
  if (seq > c.max_position_embeddings) {
    throw new Error(`sequence length ${seq} exceeds max_position_embeddings (${c.max_position_embeddings})`)
  }
  const d = c.hidden_size
  const p = (n: string) => param(model, `bert.embeddings.${n}`)
  const words = gatherRows(p("word_embeddings.weight") as tf.Tensor2D, input.inputIds.reshape([batch * seq]))
  const types =
    input.tokenTypeIds === undefined
      ? tf.slice(p("token_type_embeddings.weight"), [0, 0], [1, d])
      : gatherRows(
          p("token_type_embeddings.weight") as tf.Tensor2D,
          input.tokenTypeIds.reshape([batch * seq]),
        )
  const positions = tf.slice(p("position_embeddings.weight"), [0, 0], [seq, d])
  const summed = tf.add(tf.add(words, types).reshape([batch, seq, d]), positions)
  const normed = layerNorm(summed, p("LayerNorm.weight"), p("LayerNorm.bias"), c.layer_norm_eps)
  return dropout(normed, c.hidden_dropout_prob, "embeddings").reshape([batch * seq, d])
}

/**
 * The rows a block computes queries for, when not every token: the requested rows, and the same rows laid out
 * for batched attention, each sequence's own in `perSequence` query slots (the most any sequence has), the
 * spare slots filled with the sequence's first token, whose results nothing reads.
 */
interface QueryRows {
  /** flat rows `b * seq + t`, in the order the block returns them */
  readonly rows: Int32Array
  readonly perSequence: number
  /** the slots' flat rows, `[batch * perSequence]`, sequence by sequence */
  readonly slots: Int32Array
  /** for each requested row, its slot; undefined when the slots are the rows in their order */
  readonly pick: Int32Array | undefined
  /** the slots' rows in the full attention probabilities `[batch, heads, seq, seq]`, as rows of length seq */
  readonly probRows: Int32Array
}

const queryRows = (rows: Int32Array, batch: number, seq: number, heads: number): QueryRows => {
  const counts = new Int32Array(batch)
  for (const r of rows) {
    if (r < 0 || r >= batch * seq)
      throw new RangeError(`row ${r} is outside the batch's ${batch} x ${seq} = ${batch * seq} tokens`)
    counts[Math.floor(r / seq)]! += 1
  }
  const perSequence = counts.reduce((a, b) => Math.max(a, b), 0)
  const slots = new Int32Array(batch * perSequence)
  for (let b = 0; b < batch; b++) slots.fill(b * seq, b * perSequence, (b + 1) * perSequence)
  const filled = new Int32Array(batch)
  const pick = new Int32Array(rows.length)
  let inOrder = rows.length === slots.length
  for (const [i, r] of rows.entries()) {
    const b = Math.floor(r / seq)
    const slot = b * perSequence + filled[b]!
    filled[b]! += 1
    slots[slot] = r
    pick[i] = slot
    if (slot !== i) inOrder = false
  }
  const probRows = new Int32Array(batch * heads * perSequence)
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let s = 0; s < perSequence; s++)
        probRows[(b * heads + h) * perSequence + s] =
          (b * heads + h) * seq + slots[b * perSequence + s]! - b * seq
  return { rows, perSequence, slots, pick: inOrder ? undefined : pick, probRows }
}

/**
 * One transformer block on [batch * seq, hidden]. `maskBias` is [batch, 1, 1, seq] or undefined. With
 * `queries` it computes only those rows, [rows, hidden]: keys and values still come from every token, but the
 * queries, the attention, its output and the feed-forward only from those rows. A row's output depends on
 * the other tokens only through the keys and values, so these rows come out as the full block computes them;
 * dropout applies the full computation's mask rows.
 */
const block = (
  model: BertModel,
  i: number,
  x: tf.Tensor2D,
  shape: { batch: number; seq: number },
  maskBias: tf.Tensor | undefined,
  dropout: Dropout,
  queries?: QueryRows,
): tf.Tensor2D => {
  const c = model.config
  const { batch, seq } = shape
  const heads = c.num_attention_heads
  const d = c.hidden_size
  const dh = d / heads
  const p = (n: string) => param(model, `bert.encoder.layer.${i}.${n}`)
  const project = (n: string, from: tf.Tensor2D, length: number) =>
    linear(from, p(`attention.self.${n}.weight`), p(`attention.self.${n}.bias`))
      .reshape([batch, length, heads, dh])
      .transpose([0, 2, 1, 3])
  const xq = queries === undefined ? x : gatherRows(x, tf.tensor1d(queries.slots, "int32"))
  const length = queries?.perSequence ?? seq
  // Scaling q rather than the scores saves a [batch, heads, seq, seq] tensor (and its gradient); for
  // BERT's head size of 64 the factor 1/8 is exact, so the result is the same bit for bit.
  const q = tf.mul(project("query", xq, length), 1 / Math.sqrt(dh))
  const k = project("key", x, seq)
  const v = project("value", x, seq)
  let scores = tf.matMul(q, k, false, true)
  if (maskBias !== undefined) scores = tf.add(scores, maskBias)
  const probs = dropout(
    tf.softmax(scores),
    c.attention_probs_dropout_prob,
    `layer.${i}.attention.probs`,
    queries?.probRows,
  )
  const context = tf
    .matMul(probs, v)
    .transpose([0, 2, 1, 3])
    .reshape([batch * length, d]) as tf.Tensor2D
  // From here on every row is on its own: keep only the requested ones.
  const picked = (t: tf.Tensor2D) =>
    queries?.pick === undefined ? t : gatherRows(t, tf.tensor1d(queries.pick, "int32"))
  const attended = dropout(
    linear(picked(context), p("attention.output.dense.weight"), p("attention.output.dense.bias")),
    c.hidden_dropout_prob,
    `layer.${i}.attention.output`,
    queries?.rows,
  )
  const h = layerNorm(
    tf.add(attended, picked(xq)),
    p("attention.output.LayerNorm.weight"),
    p("attention.output.LayerNorm.bias"),
    c.layer_norm_eps,
  )
  const inner = activation(
    c.hidden_act,
    linear(h as tf.Tensor2D, p("intermediate.dense.weight"), p("intermediate.dense.bias")),
  )
  const out = dropout(
    linear(inner as tf.Tensor2D, p("output.dense.weight"), p("output.dense.bias")),
    c.hidden_dropout_prob,
    `layer.${i}.output`,
    queries?.rows,
  )
  return layerNorm(
    tf.add(out, h),
    p("output.LayerNorm.weight"),
    p("output.LayerNorm.bias"),
    c.layer_norm_eps,
  ) as tf.Tensor2D
}

/** The hidden states after the last block: [batch * seq, hidden], or with `queries` just those rows. */
const hidden = (
  model: BertModel,
  input: EncoderInput,
  options: ForwardOptions,
  queries?: QueryRows,
): tf.Tensor2D => {
  const [batch, seq] = input.inputIds.shape
  const dropout = dropoutFor(options)
  const maskBias =
    input.attentionMask === undefined
      ? undefined
      : tf.mul(tf.sub(1, input.attentionMask.toFloat()), MASKED_SCORE).reshape([batch, 1, 1, seq])
  const layers = model.config.num_hidden_layers
  let x = embed(model, input, dropout)
  for (let i = 0; i < layers; i++) {
    x = block(model, i, x, { batch, seq }, maskBias, dropout, i === layers - 1 ? queries : undefined)
  }
  return queries !== undefined && layers === 0 ? gatherRows(x, tf.tensor1d(queries.rows, "int32")) : x
}

/** The encoder's last hidden states, [batch, seq, hidden]. */
export const encode = (model: BertModel, input: EncoderInput, options: ForwardOptions = {}): tf.Tensor3D =>
  tf.tidy(() => {
    const [batch, seq] = input.inputIds.shape
    return hidden(model, input, options).reshape([batch, seq, model.config.hidden_size])
  })

/**
 * The encoder's last hidden states at the flat positions `rows` (`b * seq + t`, any order, repeats allowed):
 * `[rows.length, hidden]`, what `encode` gives at those rows. Every block but the last runs in full; the last
 * computes keys and values for every token and everything else (queries, attention, feed-forward) only for
 * these rows: a head that reads a few rows (the first token, masked positions) skips most of the last block.
 * With `allRows` the last block runs in full and the rows are picked after.
 */
export const encodeRows = (
  model: BertModel,
  input: EncoderInput,
  rows: Int32Array,
  options: ForwardOptions = {},
): tf.Tensor2D =>
  tf.tidy(() => {
    const [batch, seq] = input.inputIds.shape
    // Laid out (and checked) either way, so that a bad row fails the same with `allRows`.
    const queries = queryRows(rows, batch, seq, model.config.num_attention_heads)
    return options.allRows === true
      ? gatherRows(hidden(model, input, options), tf.tensor1d(rows, "int32"))
      : hidden(model, input, options, queries)
  })

/** The pooler's dense layer and tanh on the states it pools, [batch, hidden]. */
export const pooler = (model: BertModel, x: tf.Tensor2D): tf.Tensor2D =>
  tf.tanh(linear(x, param(model, "bert.pooler.dense.weight"), param(model, "bert.pooler.dense.bias")))

/**
 * The pooler: tanh(dense(x)), [batch, hidden], where x is the first token's hidden state (BERT), or with
 * `classifier_pooling: "mean"` the mean of the hidden states of the real tokens (`attentionMask` 1; every
 * token when it is left out).
 */
export const pool = (model: BertModel, sequence: tf.Tensor3D, attentionMask?: tf.Tensor2D): tf.Tensor2D =>
  tf.tidy(() => {
    const [batch, seq, d] = sequence.shape
    let x: tf.Tensor2D
    if (model.config.classifier_pooling === "mean") {
      const weights = (attentionMask?.toFloat() ?? tf.ones([batch, seq])).reshape([batch, seq, 1])
      x = tf.div(tf.sum(tf.mul(sequence, weights), 1), tf.maximum(tf.sum(weights, 1), 1)) as tf.Tensor2D
    } else x = tf.slice(sequence, [0, 0, 0], [batch, 1, d]).reshape([batch, d]) as tf.Tensor2D
    return pooler(model, x)
  })
