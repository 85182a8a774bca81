import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import { AdamW, decays } from "../src/train/adamw.js"
import { batchIndices, batchOf } from "../src/train/batches.js"
import { clipByGlobalNorm } from "../src/train/clip.js"
import { maskBatch } from "../src/train/masking.js"
import { deriveSeed, permutation, rngFromState, seededRng } from "../src/train/random.js"
import { learningRate } from "../src/train/schedule.js"
import type { SplitArrays } from "../stages/tokenize-format.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

describe("seeded randomness", () => {
  it("gives the same permutation for the same seed and a different one for another", () => {
    const a = permutation(50, seededRng(7))
    expect([...permutation(50, seededRng(7))]).toEqual([...a])
    expect([...permutation(50, seededRng(8))]).not.toEqual([...a])
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i))
  })

  it("continues from a saved state exactly", () => {
    const r = seededRng(3)
    r.int(0, 100)
    const saved = r.state()
    const next = [r.int(0, 1000), r.float()]
    const resumed = rngFromState(saved)
    expect([resumed.int(0, 1000), resumed.float()]).toEqual(next)
  })

  it("derives different seeds per purpose", () => {
    expect(deriveSeed(1, "shuffle")).not.toBe(deriveSeed(1, "mask"))
    expect(deriveSeed(1, "shuffle")).toBe(deriveSeed(1, "shuffle"))
  })
})

const split: SplitArrays = {
  rows: 3,
  cols: 6,
  // [CLS]=2 ... [SEP]=3, [PAD]=0
  ids: Uint16Array.from([2, 10, 11, 3, 0, 0, 2, 12, 3, 0, 0, 0, 2, 13, 14, 15, 16, 3]),
  lengths: Int32Array.from([4, 3, 6]),
  labels: Int32Array.from([1, 0, 1]),
}

describe("batches", () => {
  it("cuts a batch to its longest row and builds the attention mask", () => {
    const b = batchOf(split, [1, 0], 0)
    expect(b.cols).toBe(4)
    expect([...b.inputIds]).toEqual([2, 12, 3, 0, 2, 10, 11, 3])
    expect([...b.attentionMask]).toEqual([1, 1, 1, 0, 1, 1, 1, 1])
    expect([...b.labels!]).toEqual([0, 1])
  })

  it("splits an order into batches, the last one smaller", () => {
    const parts = batchIndices(Int32Array.from([4, 3, 2, 1, 0]), 2)
    expect(parts.map((p) => [...p])).toEqual([[4, 3], [2, 1], [0]])
  })
})

describe("masking", () => {
  const vocab = { maskId: 4, vocabSize: 20, specialIds: [0, 1, 2, 3, 4] }

  it("masks only real, non-special tokens, at least one per row, and records the originals", () => {
    const b = batchOf(split, [0, 1, 2], 0)
    const m = maskBatch(b, vocab, { rate: 0.15 }, seededRng(1))
    const rowsHit = new Set([...m.positions].map((p) => Math.floor(p / b.cols)))
    expect(rowsHit).toEqual(new Set([0, 1, 2]))
    for (let i = 0; i < m.positions.length; i++) {
      const p = m.positions[i]!
      expect(b.inputIds[p]).toBe(m.targets[i])
      expect([0, 2, 3]).not.toContain(b.inputIds[p])
      expect(b.attentionMask[p]).toBe(1)
    }
    expect([...m.positions]).toEqual([...m.positions].sort((x, y) => x - y))
  })

  it("replaces about 80% of chosen tokens by [MASK] at rate 1", () => {
    const rows = 200
    const big: SplitArrays = {
      rows,
      cols: 12,
      ids: Uint16Array.from({ length: rows * 12 }, (_, i) =>
        i % 12 === 0 ? 2 : i % 12 === 11 ? 3 : 5 + (i % 7),
      ),
      lengths: new Int32Array(rows).fill(12),
      labels: null,
    }
    const b = batchOf(
      big,
      Array.from({ length: rows }, (_, i) => i),
      0,
    )
    const m = maskBatch(b, vocab, { rate: 1 }, seededRng(2))
    expect(m.positions.length).toBe(rows * 10)
    const masked = [...m.positions].filter((p) => m.inputIds[p] === 4).length / m.positions.length
    expect(masked).toBeGreaterThan(0.77)
    expect(masked).toBeLessThan(0.83)
  })

  it("is deterministic for a seed", () => {
    const b = batchOf(split, [0, 1, 2], 0)
    const a = maskBatch(b, vocab, { rate: 0.5 }, seededRng(9))
    const c = maskBatch(b, vocab, { rate: 0.5 }, seededRng(9))
    expect([...a.inputIds]).toEqual([...c.inputIds])
    expect([...a.positions]).toEqual([...c.positions])
  })
})

describe("schedules", () => {
  const base = { lr: 1, warmupSteps: 4, totalSteps: 14 }
  it("warms up linearly then follows the shape", () => {
    expect(learningRate({ ...base, kind: "constant" }, 0)).toBeCloseTo(0.2)
    expect(learningRate({ ...base, kind: "constant" }, 3)).toBeCloseTo(0.8)
    expect(learningRate({ ...base, kind: "constant" }, 10)).toBe(1)
    expect(learningRate({ ...base, kind: "linear" }, 4)).toBe(1)
    expect(learningRate({ ...base, kind: "linear" }, 9)).toBeCloseTo(0.5)
    expect(learningRate({ ...base, kind: "linear" }, 14)).toBe(0)
    expect(learningRate({ ...base, kind: "cosine" }, 9)).toBeCloseTo(0.5)
    expect(learningRate({ ...base, kind: "cosine" }, 6.5)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)))
  })
})

describe("AdamW", () => {
  it("matches the formula (torch.optim.AdamW) over two steps, decaying weights but not biases", () => {
    const w = tf.variable(tf.tensor1d([1, -2]))
    const b = tf.variable(tf.tensor1d([0.5]))
    const params = new Map([
      ["x.weight", w],
      ["x.bias", b],
    ])
    const opt = new AdamW({ weightDecay: 0.1, beta1: 0.9, beta2: 0.99, epsilon: 1e-8 })
    const lr = 0.01
    // reference, by hand
    let pw = [1, -2]
    let pb = [0.5]
    const m = { w: [0, 0], b: [0] }
    const v = { w: [0, 0], b: [0] }
    const gradsSeq = [
      { w: [0.3, -0.1], b: [0.2] },
      { w: [-0.5, 0.4], b: [0.1] },
    ]
    for (const [t, g] of gradsSeq.entries()) {
      opt.apply(params, { "x.weight": tf.tensor1d(g.w), "x.bias": tf.tensor1d(g.b) }, lr)
      const step = (p: number[], gs: number[], mm: number[], vv: number[], decay: boolean) =>
        p.map((x, i) => {
          mm[i] = 0.9 * mm[i]! + 0.1 * gs[i]!
          vv[i] = 0.99 * vv[i]! + 0.01 * gs[i]! ** 2
          const mh = mm[i]! / (1 - 0.9 ** (t + 1))
          const vh = vv[i]! / (1 - 0.99 ** (t + 1))
          return (decay ? x * (1 - lr * 0.1) : x) - (lr * mh) / (Math.sqrt(vh) + 1e-8)
        })
      pw = step(pw, g.w, m.w, v.w, true)
      pb = step(pb, g.b, m.b, v.b, false)
    }
    const got = [...w.dataSync(), ...b.dataSync()]
    for (const [i, x] of [...pw, ...pb].entries()) expect(got[i]).toBeCloseTo(x, 6)
    expect(opt.step).toBe(2)
    expect(decays("bert.encoder.layer.0.output.LayerNorm.weight")).toBe(false)
    opt.dispose()
  })

  it("restores its state so a resumed run takes the same steps", () => {
    const run = (resume: boolean) => {
      const w = tf.variable(tf.tensor1d([1, 2, 3]))
      const params = new Map([["w", w]])
      let opt = new AdamW()
      const g = () => ({ w: tf.tensor1d([0.1, -0.2, 0.3]) })
      opt.apply(params, g(), 0.1)
      if (resume) {
        const saved = opt.state()
        const copy = {
          step: saved.step,
          moments: new Map([...saved.moments].map(([k, s]) => [k, { m: s.m.clone(), v: s.v.clone() }])),
        }
        opt.dispose()
        opt = new AdamW()
        opt.restore(copy)
      }
      opt.apply(params, g(), 0.1)
      return [...w.dataSync()]
    }
    expect(run(true)).toEqual(run(false))
  })
})

describe("clipping", () => {
  it("scales all gradients by max_norm / norm when the global norm is larger", () => {
    const { grads, norm } = clipByGlobalNorm({ a: tf.tensor1d([3]), b: tf.tensor1d([4]) }, 1)
    expect(norm).toBeCloseTo(5)
    expect(grads.a!.dataSync()[0]).toBeCloseTo(0.6, 5)
    expect(grads.b!.dataSync()[0]).toBeCloseTo(0.8, 5)
    const same = clipByGlobalNorm({ a: tf.tensor1d([0.3]) }, 1)
    expect(same.grads.a!.dataSync()[0]).toBeCloseTo(0.3)
  })
})
