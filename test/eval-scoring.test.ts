// Scoring tiny models on token splits: masked-LM scores on shared masked inputs (identical models give
// identical scores, another model other ones), the forgetting comparison, and classifier probabilities that
// do not depend on batching.
import * as tf from "@tensorflow/tfjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { compare } from "../src/eval/forgetting.js"
import {
  classifierLogProbs,
  longestFirst,
  type MaskedLmBatch,
  maskedLmBatches,
  scoreMaskedLm,
} from "../src/eval/scoring.js"
import { assignParams, type BertModel, bertConfig, createBert, disposeBert } from "../src/model/index.js"
import { seededRng } from "../src/train/random.js"
import type { SplitArrays } from "../stages/tokenize-format.js"

const VOCAB = 24
const config = bertConfig({
  vocab_size: VOCAB,
  hidden_size: 16,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 32,
  max_position_embeddings: 16,
  num_labels: 2,
})
const masking = { maskId: 4, vocabSize: VOCAB, specialIds: [0, 1, 2, 3, 4] }

/** 12 rows of 3 to 10 tokens (ids 5-23), [CLS] 2 first, [SEP] 3 last, padded with 0 to 12. */
const split: SplitArrays = (() => {
  const rows = 12
  const cols = 12
  const ids = new Uint16Array(rows * cols)
  const lengths = new Int32Array(rows)
  for (let r = 0; r < rows; r++) {
    const n = 3 + ((r * 5) % 8)
    ids.set([2, ...Array.from({ length: n }, (_, t) => 5 + ((r * 7 + t * 3) % 19)), 3], r * cols)
    lengths[r] = n + 2
  }
  return { rows, cols, ids, lengths, labels: Int32Array.from({ length: rows }, (_, r) => r % 2) }
})()
const all = Array.from({ length: split.rows }, (_, i) => i)

const batches = (batchSize: number, seed = 7): MaskedLmBatch[] =>
  maskedLmBatches(split, all, { batchSize, padId: 0, vocab: masking, rate: 0.3, rng: seededRng(seed) })

let a: BertModel
let sameAsA: BertModel
let b: BertModel
beforeAll(async () => {
  await tf.setBackend("cpu")
  a = createBert(config, { seed: 1 })
  sameAsA = createBert(config, { seed: 1 })
  b = createBert(config, { seed: 2 })
})
afterAll(() => {
  for (const m of [a, sameAsA, b]) disposeBert(m)
})

describe("masked-LM scores", () => {
  it("are the same for identical models on the same masked inputs, so nothing is forgotten", async () => {
    const inputs = batches(5)
    const before = await scoreMaskedLm(a, inputs)
    const after = await scoreMaskedLm(sameAsA, inputs)
    expect(after).toEqual(before)
    expect(before.rows).toBe(12)
    expect(before.masked_tokens).toBe(inputs.reduce((n, x) => n + x.masked.positions.length, 0))
    expect(before.perplexity).toBeCloseTo(Math.exp(before.loss), 10)
    // an untrained model is close to uniform over the vocabulary
    expect(before.loss).toBeGreaterThan(Math.log(VOCAB) - 0.5)
    expect(before.loss).toBeLessThan(Math.log(VOCAB) + 0.5)
    const m = { masked_accuracy: before.masked_accuracy, loss: before.loss, perplexity: before.perplexity }
    expect(compare(m, m)).toEqual({
      drop: { masked_accuracy: 0, loss: 0, perplexity: 0 },
      retention: { masked_accuracy: m.masked_accuracy === 0 ? null : 1, loss: 1, perplexity: 1 },
    })
  })

  it("change with another model", async () => {
    const inputs = batches(5)
    const before = await scoreMaskedLm(a, inputs)
    const after = await scoreMaskedLm(b, inputs)
    expect(after.masked_tokens).toBe(before.masked_tokens)
    expect(after.loss).not.toBe(before.loss)
  })

  it("mask the same positions whatever the batch size, and score the same", async () => {
    const flat = (bs: MaskedLmBatch[]) =>
      bs.flatMap(({ batch, masked }) =>
        [...masked.positions].map((p, i) => {
          const row = batch.indices[Math.floor(p / batch.cols)]!
          return `${row}:${p % batch.cols}:${masked.targets[i]}:${masked.inputIds[p]}`
        }),
      )
    expect(flat(batches(3)).sort()).toEqual(flat(batches(12)).sort())
    expect(flat(batches(3, 8))).not.toEqual(flat(batches(3)))
    const small = await scoreMaskedLm(a, batches(3))
    const large = await scoreMaskedLm(a, batches(12))
    expect(small.loss).toBeCloseTo(large.loss, 5)
    expect(small.masked_accuracy).toBe(large.masked_accuracy)
  })

  it("are exact for a model that always predicts one token", async () => {
    // a decoder bias of 60 on [PAD] makes every prediction [PAD], which is never a target
    const fixed = createBert(config, { seed: 3 })
    const bias = new Float32Array(VOCAB)
    bias[0] = 60
    assignParams(fixed, new Map([["cls.predictions.bias", tf.tensor1d(bias)]]))
    const s = await scoreMaskedLm(fixed, batches(4))
    disposeBert(fixed)
    expect(s.masked_accuracy).toBe(0)
    expect(s.loss).toBeGreaterThan(50)
  })
})

describe("classifier log-probabilities", () => {
  it("are in row order, sum to one, and do not depend on the batch size", async () => {
    const one = await classifierLogProbs(a, split, { batchSize: 1, padId: 0 })
    const four = await classifierLogProbs(a, split, { batchSize: 4, padId: 0 })
    expect(one.length).toBe(24)
    for (let r = 0; r < 12; r++) {
      expect(Math.exp(one[2 * r]!) + Math.exp(one[2 * r + 1]!)).toBeCloseTo(1, 5)
      expect(four[2 * r]).toBeCloseTo(one[2 * r]!, 5)
    }
    // a zero classifier with bias [1, 0] gives every row softmax([1, 0])
    const fixed = createBert(config, { seed: 4 })
    assignParams(
      fixed,
      new Map([
        ["classifier.weight", tf.zeros([2, 16])],
        ["classifier.bias", tf.tensor1d([1, 0])],
      ]),
    )
    const c = await classifierLogProbs(fixed, split, { batchSize: 5, padId: 0 })
    disposeBert(fixed)
    expect(Math.exp(c[0]!)).toBeCloseTo(Math.E / (1 + Math.E), 6)
  })

  it("batches rows longest first, ties in row order", () => {
    // lengths (+2): row 3 and 11 have 10 tokens, 6 has 9, 1 and 9 have 8
    expect([...longestFirst(split, all)].slice(0, 5)).toEqual([3, 11, 6, 1, 9])
  })
})
