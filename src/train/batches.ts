/**
 * Batches from a tokenized split (stages/tokenize-format.ts): the rows at some indices, cut to the longest
 * real row of the batch (dynamic padding: a batch of short messages does not pay for the split's widest
 * row), as plain typed arrays. Tensors are made by the caller inside its `tf.tidy`.
 */
import type { SplitArrays } from "../../stages/tokenize-format.js"

/** One batch, row-major `[rows, cols]`. */
export interface Batch {
  readonly rows: number
  readonly cols: number
  readonly inputIds: Int32Array
  /** 1 for real tokens, 0 for padding */
  readonly attentionMask: Int32Array
  /** each row's length before padding */
  readonly lengths: Int32Array
  /** one label per row; null for an unlabeled split */
  readonly labels: Int32Array | null
  /** the rows' indices in the split */
  readonly indices: Int32Array
}

/** The batch of `split`'s rows at `indices`, `padId` in the padding. */
export const batchOf = (split: SplitArrays, indices: ArrayLike<number>, padId: number): Batch => {
  const rows = indices.length
  let cols = 1
  for (let r = 0; r < rows; r++) cols = Math.max(cols, Math.min(split.lengths[indices[r]!]!, split.cols))
  const inputIds = new Int32Array(rows * cols).fill(padId)
  const attentionMask = new Int32Array(rows * cols)
  const lengths = new Int32Array(rows)
  const labels = split.labels === null ? null : new Int32Array(rows)
  for (let r = 0; r < rows; r++) {
    const i = indices[r]!
    const len = Math.min(split.lengths[i]!, split.cols)
    lengths[r] = len
    const from = i * split.cols
    for (let t = 0; t < len; t++) {
      inputIds[r * cols + t] = split.ids[from + t]!
      attentionMask[r * cols + t] = 1
    }
    if (labels !== null) labels[r] = split.labels![i]!
  }
  return { rows, cols, inputIds, attentionMask, lengths, labels, indices: Int32Array.from(indices) }
}

/** The batches of one pass over `order` (row indices), `size` rows each (the last may be smaller). */
export const batchIndices = (order: Int32Array, size: number): Array<Int32Array> => {
  const out: Array<Int32Array> = []
  for (let i = 0; i < order.length; i += size) out.push(order.subarray(i, Math.min(i + size, order.length)))
  return out
}

/** 0..n-1: the rows in their stored order (evaluation). */
export const inOrder = (n: number): Int32Array => {
  const out = new Int32Array(n)
  for (let i = 0; i < n; i++) out[i] = i
  return out
}
