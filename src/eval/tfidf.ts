/**
 * TF-IDF features over token ids, as scikit-learn's `TfidfVectorizer` defaults compute them over words:
 * the raw count of each id in a row, times its smoothed inverse document frequency
 * `ln((1 + n) / (1 + df)) + 1` learnt on the training rows, each row then scaled to unit L2 norm. Ids never
 * seen in training get no feature (as a vectorizer ignores unknown words), and special ids ([CLS], [SEP],
 * [PAD], ...) none at all. Rows are sparse: compressed sparse rows over a compact feature index.
 */
import type { SplitArrays } from "../../stages/tokenize-format.js"

/** Rows of sparse features (CSR): row `r`'s entries are `indices`/`values` from `indptr[r]` to `indptr[r + 1]`. */
export interface SparseRows {
  readonly rows: number
  /** the number of features (columns) */
  readonly features: number
  readonly indptr: Int32Array
  /** feature indices, ascending within a row */
  readonly indices: Int32Array
  readonly values: Float64Array
}

/** A fitted TF-IDF vocabulary: which token ids are features, and their idf. */
export interface Tfidf {
  /** token id -> feature index, -1 when the id is not a feature */
  readonly featureOf: Int32Array
  readonly idf: Float64Array
}

/** A mask over ids: 1 for the ids that are never features. */
const skipMask = (size: number, specialIds: ReadonlyArray<number>): Uint8Array => {
  const skip = new Uint8Array(size)
  for (const id of specialIds) if (id >= 0 && id < size) skip[id] = 1
  return skip
}

/** Learn which ids are features and their idf from the training rows. */
export const fitTfidf = (train: SplitArrays, vocabSize: number, specialIds: ReadonlyArray<number>): Tfidf => {
  const skip = skipMask(vocabSize, specialIds)
  const df = new Int32Array(vocabSize)
  const seenIn = new Int32Array(vocabSize).fill(-1)
  for (let r = 0; r < train.rows; r++) {
    const from = r * train.cols
    const len = Math.min(train.lengths[r]!, train.cols)
    for (let t = 0; t < len; t++) {
      const id = train.ids[from + t]!
      if (id >= vocabSize) throw new Error(`token id ${id} is outside the vocabulary (${vocabSize})`)
      if (skip[id] === 1 || seenIn[id] === r) continue
      seenIn[id] = r
      df[id] = df[id]! + 1
    }
  }
  const featureOf = new Int32Array(vocabSize).fill(-1)
  const idf: number[] = []
  for (let id = 0; id < vocabSize; id++)
    if (df[id]! > 0) {
      featureOf[id] = idf.length
      idf.push(Math.log((1 + train.rows) / (1 + df[id]!)) + 1)
    }
  return { featureOf, idf: Float64Array.from(idf) }
}

/** The TF-IDF rows of a split. */
export const tfidfRows = (t: Tfidf, split: SplitArrays, specialIds: ReadonlyArray<number>): SparseRows => {
  const vocab = t.featureOf.length
  const skip = skipMask(vocab, specialIds)
  const counts = new Int32Array(t.idf.length)
  const touched: number[] = []
  const indptr = new Int32Array(split.rows + 1)
  const indices: number[] = []
  const values: number[] = []
  for (let r = 0; r < split.rows; r++) {
    const from = r * split.cols
    const len = Math.min(split.lengths[r]!, split.cols)
    touched.length = 0
    for (let i = 0; i < len; i++) {
      const id = split.ids[from + i]!
      const f = id < vocab && skip[id] === 0 ? t.featureOf[id]! : -1
      if (f < 0) continue
      if (counts[f] === 0) touched.push(f)
      counts[f] = counts[f]! + 1
    }
    touched.sort((a, b) => a - b)
    let norm = 0
    const start = values.length
    for (const f of touched) {
      const v = counts[f]! * t.idf[f]!
      counts[f] = 0
      indices.push(f)
      values.push(v)
      norm += v * v
    }
    norm = Math.sqrt(norm)
    if (norm > 0) for (let i = start; i < values.length; i++) values[i] = values[i]! / norm
    indptr[r + 1] = values.length
  }
  return {
    rows: split.rows,
    features: t.idf.length,
    indptr,
    indices: Int32Array.from(indices),
    values: Float64Array.from(values),
  }
}
