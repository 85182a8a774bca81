/**
 * Data-parallel training (src/parallel/): two wasm workers' averaged gradients are the single-process gradient of
 * the whole batch (relative error below 1e-5 per parameter), for classification and masked LM with shards that
 * score different numbers of labels; a step leaves the replicas identical bit for bit and equal to a
 * single-process update. The workers run the built script, dist/parallel-worker.mjs (`npm test` builds it).
 */
import * as tf from "@tensorflow/tfjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startWasm } from "../src/compute/wasm.js"
import {
  type BertConfig,
  type BertModel,
  bertConfig,
  classificationLoss,
  createBert,
  disposeBert,
  IGNORE_INDEX as MODEL_IGNORE_INDEX,
  maskedTargets,
  mlmLoss,
} from "../src/model/index.js"
import {
  BatchInvalid,
  createDataParallelTrainer,
  type DataParallelTrainer,
  type HostBatch,
  IGNORE_INDEX,
  ReplicaFailed,
  shardBatch,
} from "../src/parallel/index.js"
import { weightedSum } from "../src/parallel/reduce.js"

const TOLERANCE = 1e-5

const config: BertConfig = bertConfig({
  vocab_size: 50,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 32,
  max_position_embeddings: 12,
  num_labels: 3,
  initializer_range: 0.2,
})
const ROWS = 5
const SEQ = 8

/** Deterministic ints in [lo, hi) (an LCG). */
const ints = (seed: number, n: number, lo: number, hi: number): Int32Array => {
  let s = seed
  return Int32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    return lo + (s % (hi - lo))
  })
}

const attentionMask = Int32Array.from({ length: ROWS * SEQ }, (_, i) => (i % SEQ < SEQ - (i % 3) ? 1 : 0))
const tokenTypeIds = Int32Array.from({ length: ROWS * SEQ }, (_, i) => (i % SEQ >= 4 ? 1 : 0))
const inputIds = ints(7, ROWS * SEQ, 1, 50)

/** Classification: one ignored label. Rows split 3 | 2, so the shards score 2 and 2 labels. */
const classBatch: HostBatch = {
  rows: ROWS,
  seq: SEQ,
  inputIds,
  attentionMask,
  tokenTypeIds,
  labels: Int32Array.from([2, IGNORE_INDEX, 0, 1, 2]),
}

/** Masked LM: 2 masked tokens in the first three rows, 6 in the last two. */
const mlmLabels = new Int32Array(ROWS * SEQ).fill(IGNORE_INDEX)
for (const [i, at] of [1, 17, 26, 27, 30, 33, 35, 38].entries()) mlmLabels[at] = 3 + i
const mlmBatch: HostBatch = { rows: ROWS, seq: SEQ, inputIds, attentionMask, tokenTypeIds, labels: mlmLabels }

/** max |got - want| / max |want|, the scale at least `floor`. */
const relErr = (got: ArrayLike<number>, want: ArrayLike<number>, floor = 1e-30): number => {
  let diff = 0
  let scale = 0
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs((got[i] ?? Number.NaN) - (want[i] ?? 0)))
    scale = Math.max(scale, Math.abs(want[i] ?? 0))
  }
  return got.length === want.length ? diff / Math.max(scale, floor) : Number.POSITIVE_INFINITY
}

/**
 * Every gradient's relative error. The key biases' gradients are zero in exact arithmetic (softmax ignores a
 * shift of a whole row of scores), so what both sides hold there is rounding noise: each tensor's scale is at
 * least a thousandth of the largest gradient entry in the model.
 */
const gradErrors = (got: ReadonlyMap<string, Float32Array>, want: ReadonlyMap<string, Float32Array>) => {
  let largest = 0
  for (const g of want.values()) for (const x of g) largest = Math.max(largest, Math.abs(x))
  return new Map([...want].map(([name, g]) => [name, relErr(got.get(name) ?? [], g, 1e-3 * largest)]))
}

const grid = (a: Int32Array) => tf.tensor2d(a, [ROWS, SEQ], "int32")

/** The single-process loss and gradients of the whole batch, by parameter name. */
const reference = (model: BertModel, lossFn: () => tf.Scalar) => {
  const names = new Map([...model.params].map(([name, v]) => [v.name, name]))
  const { value, grads } = tf.variableGrads(lossFn, [...model.params.values()])
  const out = new Map<string, Float32Array>()
  for (const [varName, g] of Object.entries(grads))
    if (g !== null) out.set(names.get(varName)!, g.dataSync() as Float32Array)
  const loss = value.dataSync()[0]!
  tf.dispose([value, ...Object.values(grads).filter((g): g is tf.Tensor => g !== null)])
  return { loss, grads: out }
}

const weightsOf = (model: BertModel) =>
  new Map([...model.params].map(([name, v]) => [name, Float32Array.from(v.dataSync())]))

let model: BertModel
let classifier: DataParallelTrainer
let masked: DataParallelTrainer

beforeAll(async () => {
  expect((await startWasm(tf)).ok).toBe(true)
  model = createBert(config, { seed: 3 })
  const initialWeights = weightsOf(model)
  ;[classifier, masked] = await Promise.all([
    createDataParallelTrainer({
      workers: 2,
      config,
      seed: 99,
      initialWeights,
      lossKind: "classification",
      optimizer: { kind: "sgd", learningRate: 0.5 },
    }),
    // No initial weights: the workers start from the same seed as `model`.
    createDataParallelTrainer({
      workers: 2,
      config,
      seed: 3,
      lossKind: "mlm",
      optimizer: { kind: "adam", learningRate: 1e-3 },
    }),
  ])
})

afterAll(async () => {
  await Promise.all([classifier?.close(), masked?.close()])
  disposeBert(model)
  await tf.setBackend("cpu")
})

describe("sharding", () => {
  it("splits rows into contiguous shards, the first ones one row longer, and skips empty ones", () => {
    const shards = shardBatch(classBatch, "classification", 2)
    expect(shards.map((s) => s?.rows)).toEqual([3, 2])
    expect(Array.from(shards[1]!.labels)).toEqual([1, 2])
    expect(Array.from(shards[1]!.inputIds)).toEqual(Array.from(inputIds.subarray(24)))
    expect(Array.from(shards[0]!.attentionMask!)).toEqual(Array.from(attentionMask.subarray(0, 24)))
    const mlm = shardBatch(mlmBatch, "mlm", 2)
    expect(mlm[1]!.labels.length).toBe(16)
    const one = shardBatch(
      { rows: 1, seq: SEQ, inputIds: inputIds.slice(0, SEQ), labels: Int32Array.from([1]) },
      "classification",
      3,
    )
    expect(one.map((s) => s?.rows)).toEqual([1, undefined, undefined])
  })

  it("uses the model's ignore index", () => {
    expect(IGNORE_INDEX).toBe(MODEL_IGNORE_INDEX)
  })
})

describe("the weighted sum of gradient slots", () => {
  const slots = Float32Array.from([1, 2, 3, 10, 20, 30, Number.NaN, Number.NaN, Number.NaN, 0.1, 0.2, 0.3])
  const sum = (weights: Array<number>) => Array.from(weightedSum(slots, 3, weights, new Float32Array(3)))
  it("sums any number of slots in float64, rounding once, and skips weight-0 slots (even NaN ones)", () => {
    expect(sum([0.25, 0, 0, 0])).toEqual([0.25, 0.5, 0.75])
    expect(sum([0.25, 0.75, 0, 0])).toEqual([7.75, 15.5, 23.25])
    expect(sum([0.5, 0.25, 0, 0.25])).toEqual(
      [0.5 + 2.5 + 0.025, 1 + 5 + 0.05, 1.5 + 7.5 + 0.075].map(Math.fround),
    )
    expect(sum([0, 0, 0, 0])).toEqual([0, 0, 0])
  })
  it("gives the same float32s for two slots as the general loop", () => {
    // A third slot of negligible weight sends the same two slots through the general loop.
    expect(sum([1 / 3, 0, 0, 2 / 3])).toEqual(sum([1 / 3, 1e-300, 0, 2 / 3]))
  })
})

describe("two workers' gradients are the whole batch's", () => {
  it("for classification, with padding, token types and an ignored label", async () => {
    const want = reference(model, () =>
      classificationLoss(model, {
        inputIds: grid(inputIds),
        attentionMask: grid(attentionMask),
        tokenTypeIds: grid(tokenTypeIds),
        labels: tf.tensor1d(classBatch.labels, "int32"),
      }),
    )
    const got = await classifier.gradients(classBatch)
    expect(got.count).toBe(4)
    expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-6)
    // Everything but the masked-LM head, which classification does not reach.
    expect([...got.grads.keys()].sort()).toEqual([...want.grads.keys()].sort())
    expect(got.grads.size).toBe(model.params.size - 5)
    for (const [name, err] of gradErrors(got.grads, want.grads)) expect(err, name).toBeLessThan(TOLERANCE)
  })

  it("for masked LM, with shards that score 2 and 6 tokens", async () => {
    const { positions, targets } = maskedTargets(mlmLabels)
    const want = reference(model, () =>
      mlmLoss(model, {
        inputIds: grid(inputIds),
        attentionMask: grid(attentionMask),
        tokenTypeIds: grid(tokenTypeIds),
        positions,
        targets: tf.tensor1d(targets, "int32"),
      }),
    )
    const got = await masked.gradients(mlmBatch)
    expect(got.count).toBe(8)
    expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-5)
    expect(got.grads.size).toBe(model.params.size - 2 - 2)
    for (const [name, err] of gradErrors(got.grads, want.grads)) expect(err, name).toBeLessThan(TOLERANCE)
  })
  it("with allRows (the full last block), the same masked-LM gradients with dropout on", async () => {
    const full = await createDataParallelTrainer({
      workers: 2,
      config,
      seed: 3,
      lossKind: "mlm",
      optimizer: { kind: "adam", learningRate: 1e-3 },
      allRows: true,
    })
    try {
      const [got, want] = await Promise.all([
        masked.gradients(mlmBatch, { dropoutSeed: 7 }),
        full.gradients(mlmBatch, { dropoutSeed: 7 }),
      ])
      expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-6)
      for (const [name, err] of gradErrors(got.grads, want.grads)) expect(err, name).toBeLessThan(TOLERANCE)
    } finally {
      await full.close()
    }
  })
})

describe("updates", () => {
  it("a step leaves both replicas identical and equal to the single-process update", async () => {
    const { grads } = await classifier.gradients(classBatch)
    const result = await classifier.step(classBatch)
    expect(result.count).toBe(4)
    const [w0, w1] = await Promise.all([classifier.weights(0), classifier.weights(1)])
    for (const [name, v] of w0)
      expect(Buffer.from(v.buffer).equals(Buffer.from(w1.get(name)!.buffer)), name).toBe(true)
    // SGD at 0.5 from the weights `model` holds.
    const before = weightsOf(model)
    for (const [name, v] of before) {
      const g = grads.get(name)
      const want = g === undefined ? v : v.map((x, i) => x - 0.5 * g[i]!)
      expect(relErr(w0.get(name)!, want), name).toBeLessThan(TOLERANCE)
    }
  })

  it("applies the caller's gradients and learning rate, and takes weights back", async () => {
    const start = await classifier.weights()
    const grads = new Map(
      classifier.params.map((p) => [p.name, new Float32Array(start.get(p.name)!.length).fill(1)]),
    )
    await classifier.applyGradients(grads, { learningRate: 0.25 })
    const after = await classifier.weights(1)
    const name = "bert.encoder.layer.1.output.dense.weight"
    expect(Array.from(after.get(name)!)).toEqual(Array.from(start.get(name)!, (x) => Math.fround(x - 0.25)))
    // The MLM head is not trained by classification: untouched.
    expect(after.get("cls.predictions.bias")).toEqual(start.get("cls.predictions.bias"))
    await classifier.setWeights(start)
    expect(await classifier.weights(1)).toEqual(start)
  })

  it("evaluates with dropout off: the loss of the gradients call, and probabilities per row", async () => {
    const evaluation = await masked.evaluate(mlmBatch)
    const { loss } = await masked.gradients(mlmBatch)
    expect(evaluation.count).toBe(8)
    expect(evaluation.loss).toBeCloseTo(loss, 6)
    const probs = (await classifier.evaluate(classBatch)).probs!
    expect(probs.length).toBe(ROWS * config.num_labels)
    expect(probs[0]! + probs[1]! + probs[2]!).toBeCloseTo(1, 6)
  })
})

describe("failures", () => {
  it("refuses a batch whose arrays do not fit its rows and sequence length, before sending it", async () => {
    const bad = { ...classBatch, labels: Int32Array.from([1, 2]) }
    await expect(classifier.step(bad)).rejects.toThrow(BatchInvalid)
    await expect(classifier.step(bad)).rejects.toThrow(
      "labels has 2 values; classification needs one per row (5)",
    )
    // Still usable.
    expect((await classifier.evaluate(classBatch)).count).toBe(4)
  })

  it("says which selector is wrong when the workers cannot start", async () => {
    const started = createDataParallelTrainer({
      workers: 2,
      config,
      seed: 1,
      trainable: ["layer.7"],
      lossKind: "classification",
      optimizer: { kind: "sgd", learningRate: 0.1 },
    })
    await expect(started).rejects.toThrow(ReplicaFailed)
    await expect(started).rejects.toThrow('parameter selector "layer.7" matches no parameter')
  })
})
