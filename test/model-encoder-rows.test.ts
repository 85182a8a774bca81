/**
 * The encoder's last block computed only for the rows a head reads (`encodeRows`): the same hidden states, the
 * same losses and the same gradient for every parameter as the full computation (`allRows`), with dropout on
 * and off, padding and attention masks, for "cls" classification and masked LM, on the cpu and wasm backends.
 */
import * as tf from "@tensorflow/tfjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startWasm } from "../src/compute/wasm.js"
import {
  type BertConfig,
  type BertModel,
  bertConfig,
  classificationLogits,
  classificationLoss,
  classifierLogits,
  createBert,
  disposeBert,
  type EncoderInput,
  encode,
  encodeRows,
  type ForwardOptions,
  maskedLmLogits,
  mlmLoss,
} from "../src/model/index.js"

const TOLERANCE = 1e-5

const tiny = (fields: Partial<BertConfig> = {}): BertConfig =>
  bertConfig({
    vocab_size: 13,
    hidden_size: 8,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    intermediate_size: 12,
    max_position_embeddings: 8,
    type_vocab_size: 2,
    num_labels: 3,
    // High rates, so that a mask row applied to the wrong row shows.
    hidden_dropout_prob: 0.3,
    attention_probs_dropout_prob: 0.3,
    initializer_range: 0.3,
    ...fields,
  })

const BATCH = 3
const SEQ = 6
const grid = (rows: Array<Array<number>>): tf.Tensor2D => tf.tensor2d(rows, [BATCH, SEQ], "int32")

/** Three sequences of 6, 4 and 3 real tokens, two segments. */
const input = (): EncoderInput => ({
  inputIds: grid([
    [2, 5, 7, 3, 9, 4],
    [2, 11, 6, 3, 0, 0],
    [2, 8, 3, 0, 0, 0],
  ]),
  attentionMask: grid([
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 0, 0],
    [1, 1, 1, 0, 0, 0],
  ]),
  tokenTypeIds: grid([
    [0, 0, 0, 1, 1, 1],
    [0, 0, 1, 1, 0, 0],
    [0, 0, 0, 0, 0, 0],
  ]),
})

/** Masked positions: 3, 1 and 2 per sequence, so the last block pads the query slots of two of them. */
const POSITIONS = Int32Array.from([1, 4, 5, 8, 13, 14])
const TARGETS = [6, 10, 4, 12, 7, 5]

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

/** The loss and every parameter's gradient (by name; null where the loss does not reach it). */
const lossAndGrads = (model: BertModel, loss: () => tf.Scalar) => {
  const names = new Map([...model.params].map(([name, v]) => [v.name, name]))
  const { value, grads } = tf.variableGrads(loss, [...model.params.values()])
  const out = new Map<string, Float32Array>()
  for (const [varName, g] of Object.entries(grads))
    if (g !== null) out.set(names.get(varName)!, Float32Array.from(g.dataSync()))
  const result = { loss: value.dataSync()[0]!, grads: out }
  tf.dispose([value, ...Object.values(grads).filter((g): g is tf.Tensor => g !== null)])
  return result
}

/** The restricted and the full computation give the same loss and gradients, parameter by parameter. */
const expectSameTraining = (
  model: BertModel,
  loss: (options: ForwardOptions) => tf.Scalar,
  reached: number,
) => {
  for (const seed of [undefined, 4]) {
    const base: ForwardOptions = seed === undefined ? {} : { dropoutSeed: seed }
    const rows = lossAndGrads(model, () => loss(base))
    const full = lossAndGrads(model, () => loss({ ...base, allRows: true }))
    expect(Math.abs(rows.loss - full.loss)).toBeLessThan(TOLERANCE)
    expect([...rows.grads.keys()].sort()).toEqual([...full.grads.keys()].sort())
    expect(rows.grads.size).toBe(reached)
    for (const [name, g] of full.grads)
      expect(maxAbsDiff(rows.grads.get(name)!, g), name).toBeLessThan(TOLERANCE)
  }
  // Dropout is on and matters: the same seed is the same loss, another seed another loss.
  const at = (o: ForwardOptions) => tf.tidy(() => loss(o).dataSync()[0]!)
  expect(at({ dropoutSeed: 4 })).not.toBeCloseTo(at({}), 3)
  expect(Math.abs(at({ dropoutSeed: 5 }) - at({ dropoutSeed: 5, allRows: true }))).toBeLessThan(TOLERANCE)
}

describe.each(["cpu", "wasm"] as const)("on the %s backend", (backend) => {
  let model: BertModel
  let x: EncoderInput
  beforeAll(async () => {
    if (backend === "wasm") expect((await startWasm(tf)).ok).toBe(true)
    else expect(await tf.setBackend("cpu")).toBe(true)
    model = createBert(tiny(), { seed: 5 })
    x = input()
  })
  afterAll(() => {
    tf.dispose(Object.values(x))
    disposeBert(model)
  })

  it("gives encode's hidden states at any rows: unordered, repeated, padding, a sequence with none", () => {
    const full = encode(model, x, { dropoutSeed: 9 })
    const all = (full.reshape([BATCH * SEQ, 8]) as tf.Tensor2D).arraySync()
    for (const rows of [[0, 6, 12], [13, 2, 2, 17, 0], [7, 8, 9], [4]]) {
      const got = encodeRows(model, x, Int32Array.from(rows), { dropoutSeed: 9 })
      expect(got.shape).toEqual([rows.length, 8])
      expect(
        maxAbsDiff(
          got.dataSync(),
          rows.flatMap((r) => all[r]!),
        ),
      ).toBeLessThan(TOLERANCE)
      got.dispose()
    }
    full.dispose()
  })

  it("refuses a row outside the batch", () => {
    expect(() => encodeRows(model, x, Int32Array.from([0, 18]))).toThrow(
      "row 18 is outside the batch's 3 x 6 = 18 tokens",
    )
  })

  it("classifies ('cls' pooling) with the same logits, loss and gradients as the full computation", () => {
    const labels = tf.tensor1d([2, 0, 1], "int32")
    const logits = classificationLogits(model, x)
    const want = classifierLogits(model, encode(model, x), {}, x.attentionMask)
    expect(maxAbsDiff(logits.dataSync(), want.dataSync())).toBeLessThan(TOLERANCE)
    // Everything but the masked-LM head (5 tensors).
    expectSameTraining(model, (o) => classificationLoss(model, { ...x, labels }, o), model.params.size - 5)
    tf.dispose([labels, logits, want])
  })

  it("scores masked LM with the same logits, loss and gradients as the full computation", () => {
    const targets = tf.tensor1d(TARGETS, "int32")
    const logits = maskedLmLogits(model, x, POSITIONS, { dropoutSeed: 2 })
    const want = maskedLmLogits(model, x, POSITIONS, { dropoutSeed: 2, allRows: true })
    expect(logits.shape).toEqual([6, 13])
    expect(maxAbsDiff(logits.dataSync(), want.dataSync())).toBeLessThan(TOLERANCE)
    // Everything but the pooler and the classifier (2 + 2 tensors).
    expectSameTraining(
      model,
      (o) => mlmLoss(model, { ...x, positions: POSITIONS, targets }, o),
      model.params.size - 4,
    )
    tf.dispose([targets, logits, want])
  })

  it("does the same with a one-block encoder, where the embeddings feed the restricted block", () => {
    const one = createBert(tiny({ num_hidden_layers: 1 }), { seed: 6 })
    const labels = tf.tensor1d([1, 1, 0], "int32")
    expectSameTraining(one, (o) => classificationLoss(one, { ...x, labels }, o), one.params.size - 5)
    tf.dispose(labels)
    disposeBert(one)
  })

  it("gives a masked-LM loss of 0 and zero gradients for a batch with nothing masked", () => {
    const targets = tf.tensor1d([], "int32")
    const batch = { ...x, positions: new Int32Array(0), targets }
    for (const o of [{ dropoutSeed: 1 }, { dropoutSeed: 1, allRows: true }]) {
      const { loss, grads } = lossAndGrads(model, () => mlmLoss(model, batch, o))
      // The wasm backend's stock Sum of an empty tensor is not 0 but what its output memory held (~1e-41).
      expect(Math.abs(loss)).toBeLessThan(1e-30)
      for (const [name, g] of grads) expect(maxAbsDiff(g, new Float32Array(g.length)), name).toBe(0)
    }
    targets.dispose()
  })
})

describe("what the last block computes", () => {
  beforeAll(async () => {
    await tf.setBackend("cpu")
  })

  /** The [rows, columns] of every matmul in a forward pass whose output has `columns` columns. */
  const matmulRows = async (f: () => tf.Tensor, columns: number): Promise<Array<Array<number>>> => {
    const info = await tf.profile(() => {
      const out = f()
      out.dataSync()
      return out
    })
    return info.kernels
      .filter((k) => k.name === "BatchMatMul" && k.outputShapes[0]!.at(-1) === columns)
      .map((k) => k.outputShapes[0]!.slice(-2))
  }

  it("runs the feed-forward on every token in the first block, on the head's rows in the last", async () => {
    const model = createBert(tiny(), { seed: 1 })
    const x = input()
    const labels = tf.tensor1d([0, 1, 2], "int32")
    const targets = tf.tensor1d(TARGETS, "int32")
    // The intermediate dense layer is the one matmul with 12 outputs.
    expect(await matmulRows(() => classificationLoss(model, { ...x, labels }), 12)).toEqual([
      [BATCH * SEQ, 12],
      [BATCH, 12],
    ])
    expect(await matmulRows(() => mlmLoss(model, { ...x, positions: POSITIONS, targets }), 12)).toEqual([
      [BATCH * SEQ, 12],
      [POSITIONS.length, 12],
    ])
    expect(
      await matmulRows(() => classificationLoss(model, { ...x, labels }, { allRows: true }), 12),
    ).toEqual([
      [BATCH * SEQ, 12],
      [BATCH * SEQ, 12],
    ])
    tf.dispose([...Object.values(x), labels, targets])
    disposeBert(model)
  })

  it("reads every token with mean pooling, as the full computation does", async () => {
    const model = createBert(tiny({ classifier_pooling: "mean" }), { seed: 1 })
    const x = input()
    expect(await matmulRows(() => classificationLogits(model, x), 12)).toEqual([
      [BATCH * SEQ, 12],
      [BATCH * SEQ, 12],
    ])
    const want = classifierLogits(model, encode(model, x), {}, x.attentionMask)
    expect(classificationLogits(model, x).dataSync()).toEqual(want.dataSync())
    tf.dispose([...Object.values(x), want])
    disposeBert(model)
  })
})
