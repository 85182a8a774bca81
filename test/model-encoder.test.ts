import * as tf from "@tensorflow/tfjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { activation, layerNorm } from "../src/model/encoder.js"
import {
  type BertConfig,
  type BertModel,
  bertConfig,
  classificationLoss,
  classifierLogits,
  countParams,
  createBert,
  crossEntropy,
  disposeBert,
  dropoutMask,
  dropoutMaskRows,
  encode,
  maskedTargets,
  mlmLogits,
  ParamSelectorInvalid,
  paramSpecs,
  pool,
  selectModelParams,
  setTrainable,
  trainableVariables,
  trainOnly,
} from "../src/model/index.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

const tiny = (fields: Partial<BertConfig> = {}): BertConfig =>
  bertConfig({
    vocab_size: 11,
    hidden_size: 4,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 6,
    max_position_embeddings: 8,
    type_vocab_size: 2,
    num_labels: 3,
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    // Large weights make every op matter in the comparison with the reference below.
    initializer_range: 0.5,
    ...fields,
  })

const ids = (rows: Array<Array<number>>): tf.Tensor2D => tf.tensor2d(rows, undefined, "int32")

// ---------------------------------------------------------------------------------------------------
// A plain-JS BERT forward pass in float64, written from the paper and Transformers' BertModel, to check
// the tensor code against. Weights are [out, in].
type W = Map<string, { shape: Array<number>; values: Float32Array }>
const weights = (m: BertModel): W =>
  new Map([...m.params].map(([n, v]) => [n, { shape: v.shape, values: v.dataSync() as Float32Array }]))
const mat = (w: W, name: string): Array<Array<number>> => {
  const { shape, values } = w.get(name)!
  const cols = shape[1] ?? shape[0]!
  return Array.from({ length: shape.length === 1 ? 1 : shape[0]! }, (_, r) =>
    Array.from(values.subarray(r * cols, (r + 1) * cols)),
  )
}
const vec = (w: W, name: string): Array<number> => Array.from(w.get(name)!.values)
const lin = (x: Array<number>, wt: Array<Array<number>>, b: Array<number>) =>
  wt.map((row, o) => row.reduce((s, wi, i) => s + wi * x[i]!, b[o]!))
const ln = (x: Array<number>, g: Array<number>, b: Array<number>, eps: number) => {
  const mean = x.reduce((a, c) => a + c, 0) / x.length
  const v = x.reduce((a, c) => a + (c - mean) ** 2, 0) / x.length
  return x.map((xi, i) => ((xi - mean) / Math.sqrt(v + eps)) * g[i]! + b[i]!)
}
const erf = (x: number): number => {
  // Abramowitz-Stegun 7.1.26 is 1.5e-7 accurate: enough against float32.
  const t = 1 / (1 + 0.3275911 * Math.abs(x))
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-x * x)
  return x < 0 ? -y : y
}
const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2))

const referenceSequence = (
  c: BertConfig,
  w: W,
  tokens: Array<number>,
  types: Array<number>,
  mask: Array<number>,
) => {
  const d = c.hidden_size
  const dh = d / c.num_attention_heads
  const word = mat(w, "bert.embeddings.word_embeddings.weight")
  const pos = mat(w, "bert.embeddings.position_embeddings.weight")
  const typ = mat(w, "bert.embeddings.token_type_embeddings.weight")
  let x = tokens.map((t, i) =>
    ln(
      word[t]!.map((v, k) => v + pos[i]![k]! + typ[types[i]!]![k]!),
      vec(w, "bert.embeddings.LayerNorm.weight"),
      vec(w, "bert.embeddings.LayerNorm.bias"),
      c.layer_norm_eps,
    ),
  )
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `bert.encoder.layer.${l}.`
    const proj = (n: string) => x.map((h) => lin(h, mat(w, `${p}${n}.weight`), vec(w, `${p}${n}.bias`)))
    const q = proj("attention.self.query")
    const k = proj("attention.self.key")
    const v = proj("attention.self.value")
    const ctx = x.map(() => new Array<number>(d).fill(0))
    for (let h = 0; h < c.num_attention_heads; h++) {
      for (let i = 0; i < x.length; i++) {
        const scores = x.map((_, j) => {
          let s = 0
          for (let e = h * dh; e < (h + 1) * dh; e++) s += q[i]![e]! * k[j]![e]!
          return mask[j] === 1 ? s / Math.sqrt(dh) : Number.NEGATIVE_INFINITY
        })
        const max = Math.max(...scores)
        const exps = scores.map((s) => Math.exp(s - max))
        const sum = exps.reduce((a, b) => a + b, 0)
        for (let j = 0; j < x.length; j++) {
          for (let e = h * dh; e < (h + 1) * dh; e++) ctx[i]![e]! += (exps[j]! / sum) * v[j]![e]!
        }
      }
    }
    const attn = ctx.map((cv, i) =>
      ln(
        lin(cv, mat(w, `${p}attention.output.dense.weight`), vec(w, `${p}attention.output.dense.bias`)).map(
          (a, e) => a + x[i]![e]!,
        ),
        vec(w, `${p}attention.output.LayerNorm.weight`),
        vec(w, `${p}attention.output.LayerNorm.bias`),
        c.layer_norm_eps,
      ),
    )
    x = attn.map((a) => {
      const inner = lin(
        a,
        mat(w, `${p}intermediate.dense.weight`),
        vec(w, `${p}intermediate.dense.bias`),
      ).map(gelu)
      const out = lin(inner, mat(w, `${p}output.dense.weight`), vec(w, `${p}output.dense.bias`))
      return ln(
        out.map((o, e) => o + a[e]!),
        vec(w, `${p}output.LayerNorm.weight`),
        vec(w, `${p}output.LayerNorm.bias`),
        c.layer_norm_eps,
      )
    })
  }
  return x
}
// ---------------------------------------------------------------------------------------------------

describe("parameters", () => {
  it("has BERT's names and PyTorch's [out, in] shapes", () => {
    const specs = paramSpecs(tiny({ num_hidden_layers: 2 }))
    const byName = Object.fromEntries(specs.map((s) => [s.name, s.shape]))
    expect(byName["bert.embeddings.word_embeddings.weight"]).toEqual([11, 4])
    expect(byName["bert.embeddings.position_embeddings.weight"]).toEqual([8, 4])
    expect(byName["bert.embeddings.token_type_embeddings.weight"]).toEqual([2, 4])
    expect(byName["bert.encoder.layer.1.attention.self.query.weight"]).toEqual([4, 4])
    expect(byName["bert.encoder.layer.1.intermediate.dense.weight"]).toEqual([6, 4])
    expect(byName["bert.encoder.layer.1.output.dense.weight"]).toEqual([4, 6])
    expect(byName["bert.encoder.layer.1.output.LayerNorm.bias"]).toEqual([4])
    expect(byName["bert.pooler.dense.weight"]).toEqual([4, 4])
    expect(byName["cls.predictions.transform.dense.weight"]).toEqual([4, 4])
    expect(byName["cls.predictions.bias"]).toEqual([11])
    expect(byName["classifier.weight"]).toEqual([3, 4])
    expect(specs.length).toBe(5 + 2 * 16 + 2 + 5 + 2)
  })

  it("starts the same from the same seed and zeroes the padding token's embedding", () => {
    const a = createBert(tiny(), { seed: 7 })
    const b = createBert(tiny(), { seed: 7 })
    const c = createBert(tiny(), { seed: 8 })
    const word = (m: BertModel) =>
      Array.from(m.params.get("bert.embeddings.word_embeddings.weight")!.dataSync())
    expect(word(a)).toEqual(word(b))
    expect(word(a)).not.toEqual(word(c))
    expect(word(a).slice(0, 4)).toEqual([0, 0, 0, 0])
    expect(Array.from(a.params.get("bert.embeddings.LayerNorm.weight")!.dataSync())).toEqual([1, 1, 1, 1])
    for (const m of [a, b, c]) disposeBert(m)
  })
})

describe("forward pass", () => {
  let model: BertModel
  beforeAll(() => {
    model = createBert(tiny(), { seed: 1 })
  })
  afterAll(() => disposeBert(model))

  it("computes what a plain BERT implementation computes, with mask and token types", () => {
    const tokens = [
      [2, 5, 7, 3, 0],
      [2, 9, 3, 0, 0],
    ]
    const types = [
      [0, 0, 1, 1, 0],
      [0, 1, 1, 0, 0],
    ]
    const mask = [
      [1, 1, 1, 1, 0],
      [1, 1, 1, 0, 0],
    ]
    const out = encode(model, { inputIds: ids(tokens), tokenTypeIds: ids(types), attentionMask: ids(mask) })
    expect(out.shape).toEqual([2, 5, 4])
    const got = out.arraySync()
    const w = weights(model)
    for (let b = 0; b < 2; b++) {
      const want = referenceSequence(model.config, w, tokens[b]!, types[b]!, mask[b]!)
      for (let t = 0; t < 5; t++) {
        if (mask[b]![t] === 0) continue
        for (let e = 0; e < 4; e++) expect(got[b]![t]![e]!).toBeCloseTo(want[t]![e]!, 5)
      }
    }
    out.dispose()
  })

  it("gives the same outputs for real tokens however much padding follows", () => {
    const short = encode(model, { inputIds: ids([[2, 5, 7, 3]]) })
    const padded = encode(model, {
      inputIds: ids([[2, 5, 7, 3, 0, 0, 0]]),
      attentionMask: ids([[1, 1, 1, 1, 0, 0, 0]]),
    })
    const a = short.arraySync()[0]!
    const b = padded.arraySync()[0]!.slice(0, 4)
    for (let t = 0; t < 4; t++) for (let e = 0; e < 4; e++) expect(b[t]![e]!).toBeCloseTo(a[t]![e]!, 6)
    tf.dispose([short, padded])
  })

  it("pools the first token through dense + tanh", () => {
    const seq = encode(model, { inputIds: ids([[2, 5, 3]]) })
    const pooled = pool(model, seq).arraySync()[0]!
    const w = weights(model)
    const first = seq.arraySync()[0]![0]!
    const want = lin(first, mat(w, "bert.pooler.dense.weight"), vec(w, "bert.pooler.dense.bias")).map(
      Math.tanh,
    )
    for (let e = 0; e < 4; e++) expect(pooled[e]!).toBeCloseTo(want[e]!, 6)
    seq.dispose()
  })

  it("pools the mean of the real tokens with classifier_pooling: mean, ignoring padding", () => {
    const meanModel: BertModel = { ...model, config: { ...model.config, classifier_pooling: "mean" } }
    const seq = encode(meanModel, { inputIds: ids([[2, 5, 3, 0]]) })
    const mask = ids([[1, 1, 1, 0]])
    const pooled = pool(meanModel, seq, mask).arraySync()[0]!
    const rows = seq.arraySync()[0]!.slice(0, 3)
    const mean = rows[0]!.map((_, e) => (rows[0]![e]! + rows[1]![e]! + rows[2]![e]!) / 3)
    const w = weights(model)
    const want = lin(mean, mat(w, "bert.pooler.dense.weight"), vec(w, "bert.pooler.dense.bias")).map(
      Math.tanh,
    )
    for (let e = 0; e < 4; e++) expect(pooled[e]!).toBeCloseTo(want[e]!, 6)
    tf.dispose([seq, mask])
  })

  it("applies dropout only with a seed, the same masks for the same seed", () => {
    const input = { inputIds: ids([[2, 5, 7, 3]]) }
    const run = (seed?: number) => {
      const seq = encode(model, input, seed === undefined ? {} : { dropoutSeed: seed })
      const values = Array.from(seq.dataSync())
      seq.dispose()
      return values
    }
    const evalOut = run()
    expect(run()).toEqual(evalOut)
    expect(run(3)).toEqual(run(3))
    expect(run(3)).not.toEqual(run(4))
    expect(run(3)).not.toEqual(evalOut)
  })
})

describe("written-out gradients", () => {
  const seeded = (shape: Array<number>, seed: number) => tf.randomNormal(shape, 0, 1, "float32", seed)
  const relErr = (got: tf.Tensor, want: tf.Tensor) => {
    const g = got.dataSync()
    const w = want.dataSync()
    let diff = 0
    let scale = 0
    for (let i = 0; i < w.length; i++) {
      diff = Math.max(diff, Math.abs(g[i]! - w[i]!))
      scale = Math.max(scale, Math.abs(w[i]!))
    }
    return diff / scale
  }

  it("LayerNorm's equal autodiff through moments, for x, the scale and the shift", () => {
    const [x, gamma, beta, w] = [seeded([3, 5, 8], 1), seeded([8], 2), seeded([8], 3), seeded([3, 5, 8], 4)]
    const plain = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, -1, true)
      return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), g), b)
    }
    const loss = (f: typeof plain) => (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(f(x, g, b), w))
    const got = tf.valueAndGrads(loss((x, g, b) => layerNorm(x, g, b, 1e-5)))([x, gamma, beta])
    const want = tf.valueAndGrads(loss(plain))([x, gamma, beta])
    expect(got.value.dataSync()[0]).toBe(want.value.dataSync()[0])
    for (let i = 0; i < 3; i++) expect(relErr(got.grads[i]!, want.grads[i]!)).toBeLessThan(1e-5)
  })

  it("GELU's equals autodiff through erf, and its values are the plain formula's", () => {
    const x = tf.mul(seeded([4, 50], 5), 3)
    const w = seeded([4, 50], 6)
    const plain = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1))
    expect(Array.from(activation("gelu", x).dataSync())).toEqual(Array.from(plain(x).dataSync()))
    const grad = (f: (x: tf.Tensor) => tf.Tensor) => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x), w)))(x)
    expect(
      relErr(
        grad((x) => activation("gelu", x)),
        grad(plain),
      ),
    ).toBeLessThan(1e-5)
  })
})

describe("dropout masks", () => {
  it("drop about `rate` of the entries and scale the rest by 1 / (1 - rate), the same for the same key", () => {
    const mask = dropoutMask(100_000, 0.25, "3:layer.0.output")
    const dropped = mask.filter((m) => m === 0).length
    expect(Math.abs(dropped / mask.length - 0.25)).toBeLessThan(0.005)
    expect(new Set(mask)).toEqual(new Set([0, Math.fround(1 / 0.75)]))
    expect(dropoutMask(1000, 0.25, "3:layer.0.output")).toEqual(mask.subarray(0, 1000))
    expect(dropoutMask(1000, 0.25, "4:layer.0.output")).not.toEqual(mask.subarray(0, 1000))
  })

  it("draw any rows of a mask, in any order and repeated, equal to the full mask's rows", () => {
    const full = dropoutMask(64 * 1000, 0.1, "5:layer.1.attention.probs")
    const rows = Int32Array.from([999, 0, 17, 17, 500])
    const part = dropoutMaskRows(rows, 64, 0.1, "5:layer.1.attention.probs")
    expect(part.length).toBe(5 * 64)
    for (const [i, r] of rows.entries())
      expect(part.subarray(i * 64, (i + 1) * 64)).toEqual(full.subarray(r * 64, (r + 1) * 64))
    expect(dropoutMaskRows(new Int32Array(0), 64, 0.1, "5:x")).toEqual(new Float32Array(0))
  })
})

describe("heads and losses", () => {
  it("computes MLM logits only at the masked positions, equal to the full projection's rows", () => {
    const model = createBert(tiny(), { seed: 2 })
    const labels = [
      [-100, 6, -100, -100],
      [-100, -100, 4, 9],
    ]
    const { positions, targets } = maskedTargets(labels.flat())
    expect(Array.from(positions)).toEqual([1, 6, 7])
    expect(Array.from(targets)).toEqual([6, 4, 9])
    const seq = encode(model, {
      inputIds: ids([
        [2, 1, 7, 3],
        [2, 8, 1, 1],
      ]),
    })
    const masked = mlmLogits(model, seq, tf.tensor1d(positions, "int32"))
    expect(masked.shape).toEqual([3, 11])
    const all = mlmLogits(model, seq, tf.range(0, 8, 1, "int32") as tf.Tensor1D).arraySync()
    expect(masked.arraySync()).toEqual([all[1], all[6], all[7]])
    tf.dispose([seq, masked])
    disposeBert(model)
  })

  it("takes the mean cross-entropy over labels that are not ignored", () => {
    const logits = tf.tensor2d([
      [1, 2, 3],
      [0, 0, 0],
      [5, 1, 0],
    ])
    const loss = crossEntropy(logits, tf.tensor1d([2, -100, 0], "int32")).dataSync()[0]!
    const lse = (xs: Array<number>) => Math.log(xs.reduce((s, x) => s + Math.exp(x), 0))
    const want = (lse([1, 2, 3]) - 3 + (lse([5, 1, 0]) - 5)) / 2
    expect(loss).toBeCloseTo(want, 6)
    expect(crossEntropy(logits, tf.tensor1d([-100, -100, -100], "int32")).dataSync()[0]).toBe(0)
  })

  it("gives classifier logits of shape [batch, num_labels]", () => {
    const model = createBert(tiny(), { seed: 2 })
    const seq = encode(model, {
      inputIds: ids([
        [2, 1, 7, 3],
        [2, 8, 1, 1],
      ]),
    })
    expect(classifierLogits(model, seq).shape).toEqual([2, 3])
    seq.dispose()
    disposeBert(model)
  })
})

describe("freezing", () => {
  it("selects by part, by layer (negative from the top) and by glob, and counts what trains", () => {
    const model = createBert(tiny({ num_hidden_layers: 3 }), { seed: 0 })
    expect(selectModelParams(model, ["layer.-1"]).every((n) => n.startsWith("bert.encoder.layer.2."))).toBe(
      true,
    )
    expect(selectModelParams(model, ["layer.-1"]).length).toBe(16)
    expect(selectModelParams(model, ["bert.encoder.layer.*.attention.self.query.weight"])).toEqual([
      "bert.encoder.layer.0.attention.self.query.weight",
      "bert.encoder.layer.1.attention.self.query.weight",
      "bert.encoder.layer.2.attention.self.query.weight",
    ])
    expect(selectModelParams(model, ["bert.pooler.**"])).toEqual([
      "bert.pooler.dense.weight",
      "bert.pooler.dense.bias",
    ])
    const all = countParams(model)
    expect(all.trainable).toBe(all.total)
    // vocab 11, d 4, ffn 6, positions 8, types 2, labels 3
    const layer = 4 * (4 * 4 + 4) + 2 * 4 + (6 * 4 + 6) + (4 * 6 + 4) + 2 * 4
    expect(all.byPart.encoder.total).toBe(3 * layer)
    expect(all.total).toBe((11 + 8 + 2) * 4 + 8 + 3 * layer + 20 + (20 + 8 + 11) + (3 * 4 + 3))

    trainOnly(model, ["classifier", "layer.-1"])
    const counts = countParams(model)
    expect(counts.trainable).toBe(layer + 15)
    expect(counts.byPart.embeddings.trainable).toBe(0)
    expect(trainableVariables(model).length).toBe(18)
    setTrainable(model, ["pooler"], true)
    expect(countParams(model).trainable).toBe(layer + 15 + 20)
    disposeBert(model)
  })

  it("refuses a selector that matches nothing", () => {
    const model = createBert(tiny(), { seed: 0 })
    expect(() => trainOnly(model, ["layer.4"])).toThrow(ParamSelectorInvalid)
    expect(() => trainOnly(model, ["clasifier"])).toThrow(
      'parameter selector "clasifier" matches no parameter; use all, embeddings, encoder, pooler, mlm, classifier, layer.N (0 to 0, or -1 for the last) or a glob such as bert.encoder.layer.*.output.**',
    )
    disposeBert(model)
  })
})

describe("training", () => {
  it("learns to tell sequences containing token 5 from those without, with dropout on", () => {
    const config = tiny({
      vocab_size: 10,
      hidden_size: 16,
      num_attention_heads: 2,
      intermediate_size: 32,
      num_labels: 2,
      initializer_range: 0.02,
      max_position_embeddings: 8,
    })
    const model = createBert(config, { seed: 3 })
    // A fixed pseudo-random data stream (mulberry32), so the test is the same every run.
    let state = 12345
    const rand = (n: number) => {
      state = (state + 0x6d2b79f5) | 0
      let t = Math.imul(state ^ (state >>> 15), 1 | state)
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
      return ((t ^ (t >>> 14)) >>> 0) % n
    }
    const makeBatch = (size: number) => {
      const rows: Array<Array<number>> = []
      const labels: Array<number> = []
      for (let b = 0; b < size; b++) {
        const row = [1, ...Array.from({ length: 7 }, () => 6 + rand(4))]
        const positive = rand(2) === 1
        if (positive) row[1 + rand(7)] = 5
        rows.push(row)
        labels.push(positive ? 1 : 0)
      }
      return { inputIds: ids(rows), labels: tf.tensor1d(labels, "int32") }
    }
    const optimizer = tf.train.adam(1e-2)
    const evalBatch = makeBatch(64)
    const evalLoss = () => tf.tidy(() => classificationLoss(model, evalBatch).dataSync()[0]!)
    const before = evalLoss()
    for (let step = 0; step < 40; step++) {
      const batch = makeBatch(16)
      optimizer.minimize(
        () => classificationLoss(model, batch, { dropoutSeed: step }),
        false,
        trainableVariables(model),
      )
      tf.dispose([batch.inputIds, batch.labels])
    }
    const after = evalLoss()
    expect(before).toBeGreaterThan(0.6)
    expect(after).toBeLessThan(0.05)
    optimizer.dispose()
    disposeBert(model)
  })
})
