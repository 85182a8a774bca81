// The evaluation's numbers: classification metrics on a hand-made confusion, TF-IDF rows, and the
// logistic-regression baseline (learns a separable toy set, deterministic), all pure JavaScript.
import { describe, expect, it } from "vitest"
import { bagOfWordsBaseline } from "../src/eval/baseline.js"
import { fitLogistic, predictLogistic } from "../src/eval/logistic.js"
import { classificationScores, confusionMatrix, meanCrossEntropy } from "../src/eval/metrics.js"
import { pickExamples, predictedFrom } from "../src/eval/predictions.js"
import { fitTfidf, tfidfRows } from "../src/eval/tfidf.js"
import type { SplitArrays } from "../stages/tokenize-format.js"

describe("classification metrics", () => {
  // 3 labels; true: 4 a, 3 b, 3 c
  const truth = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
  const pred = [0, 0, 1, 2, 1, 1, 0, 2, 2, 2]

  it("counts the confusion matrix as [true][predicted]", () => {
    expect(confusionMatrix(truth, pred, 3)).toEqual([
      [2, 1, 1],
      [1, 2, 0],
      [0, 0, 3],
    ])
  })

  it("computes accuracy and per-label and macro precision, recall and F1 (as sklearn does)", () => {
    const s = classificationScores(truth, pred, ["a", "b", "c"])
    expect(s.examples).toBe(10)
    expect(s.accuracy).toBeCloseTo(0.7, 12)
    // a: precision 2/3, recall 2/4; b: 2/3, 2/3; c: 3/4, 3/3
    expect(s.per_label.a!.precision).toBeCloseTo(2 / 3, 12)
    expect(s.per_label.a!.recall).toBeCloseTo(0.5, 12)
    expect(s.per_label.a!.f1).toBeCloseTo(4 / 7, 12)
    expect(s.per_label.c).toEqual({ precision: 0.75, recall: 1, f1: (2 * 0.75) / 1.75, support: 3 })
    expect(s.precision_macro).toBeCloseTo((2 / 3 + 2 / 3 + 0.75) / 3, 12)
    expect(s.recall_macro).toBeCloseTo((0.5 + 2 / 3 + 1) / 3, 12)
    expect(s.f1_macro).toBeCloseTo((4 / 7 + 2 / 3 + 6 / 7) / 3, 12)
  })

  it("scores a label never predicted (or absent) as 0, not NaN", () => {
    const s = classificationScores([0, 0, 1], [0, 0, 0], ["x", "y", "z"])
    expect(s.per_label.y).toEqual({ precision: 0, recall: 0, f1: 0, support: 1 })
    expect(s.per_label.z).toEqual({ precision: 0, recall: 0, f1: 0, support: 0 })
    expect(s.f1_macro).toBeCloseTo(0.8 / 3, 12)
  })

  it("refuses label ids out of range and arrays of different lengths", () => {
    expect(() => confusionMatrix([0, 3], [0, 0], 2)).toThrow("label id out of range at example 1")
    expect(() => confusionMatrix([0], [0, 1], 2)).toThrow("1 true labels but 2 predictions")
  })

  it("takes the mean cross-entropy of the true labels' probabilities", () => {
    expect(meanCrossEntropy([0.5, 0.5, 0.9, 0.1], [1, 0], 2)).toBeCloseTo(
      -(Math.log(0.5) + Math.log(0.9)) / 2,
      12,
    )
  })
})

describe("examples to list", () => {
  const truth = Int32Array.from([0, 1, 1, 0])
  const labels = ["a", "b"]
  // probabilities [rows, 2]
  const m1 = predictedFrom(Float64Array.from([0.9, 0.1, 0.4, 0.6, 0.3, 0.7, 0.6, 0.4]), truth, labels)
  const m2 = predictedFrom(Float64Array.from([0.8, 0.2, 0.55, 0.45, 0.9, 0.1, 0.7, 0.3]), truth, labels)

  it("lists disagreements, the widest gap in the true label's probability first", () => {
    // rows 1 (0.6 vs 0.45) and 2 (0.7 vs 0.1) disagree
    expect(pickExamples([m1, m2], truth, 2)).toEqual({ kind: "disagreements", rows: [2, 1] })
  })

  it("lists one model's mistakes, the most confident first", () => {
    expect(pickExamples([m2], truth, 2)).toEqual({ kind: "errors", rows: [2, 1] })
    expect(m2.metrics.accuracy).toBe(0.5)
    expect(m2.metrics.loss).toBeCloseTo(
      -(Math.log(0.8) + Math.log(0.45) + Math.log(0.1) + Math.log(0.7)) / 4,
      12,
    )
  })
})

/** A split of rows of token ids, [CLS]=2 first and [SEP]=3 last, padded with 0. */
const splitOf = (rows: ReadonlyArray<ReadonlyArray<number>>, labels: ReadonlyArray<number>): SplitArrays => {
  const cols = Math.max(...rows.map((r) => r.length)) + 2
  const ids = new Uint16Array(rows.length * cols)
  for (const [i, r] of rows.entries()) ids.set([2, ...r, 3], i * cols)
  return {
    rows: rows.length,
    cols,
    ids,
    lengths: Int32Array.from(rows, (r) => r.length + 2),
    labels: Int32Array.from(labels),
  }
}

const SPECIALS = [0, 1, 2, 3, 4]

describe("TF-IDF over token ids", () => {
  it("weights counts by smoothed idf and normalises each row", () => {
    // id 5 in both rows, id 6 twice in row 0, id 7 only in row 1
    const train = splitOf(
      [
        [5, 6, 6],
        [5, 7],
      ],
      [0, 1],
    )
    const t = fitTfidf(train, 10, SPECIALS)
    expect([...t.featureOf]).toEqual([-1, -1, -1, -1, -1, 0, 1, 2, -1, -1])
    const idfRare = Math.log(3 / 2) + 1
    expect([...t.idf]).toEqual([1, idfRare, idfRare])
    const x = tfidfRows(t, train, SPECIALS)
    expect([...x.indptr]).toEqual([0, 2, 4])
    expect([...x.indices]).toEqual([0, 1, 0, 2])
    const n0 = Math.hypot(1, 2 * idfRare)
    expect(x.values[0]).toBeCloseTo(1 / n0, 12)
    expect(x.values[1]).toBeCloseTo((2 * idfRare) / n0, 12)
    // an id unseen in training is no feature
    const test = tfidfRows(t, splitOf([[8, 5]], [0]), SPECIALS)
    expect([...test.indices]).toEqual([0])
    expect([...test.values]).toEqual([1])
  })
})

describe("the logistic-regression baseline", () => {
  // three classes, each with its own words (5-6, 7-8, 9-10) and a shared noise word 11
  const rng = (() => {
    let s = 12345
    return () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0
      return s / 2 ** 32
    }
  })()
  const rowsOf = (n: number) => {
    const rows: number[][] = []
    const labels: number[] = []
    for (let i = 0; i < n; i++) {
      const c = i % 3
      const len = 2 + Math.floor(rng() * 4)
      rows.push(Array.from({ length: len }, () => (rng() < 0.2 ? 11 : 5 + 2 * c + Math.floor(rng() * 2))))
      labels.push(c)
    }
    return splitOf(rows, labels)
  }
  const train = rowsOf(60)
  const test = rowsOf(30)
  const options = { vocabSize: 12, specialIds: SPECIALS, classes: 3 }

  it("learns a separable toy set", () => {
    const { probs, info } = bagOfWordsBaseline(train, test, options)
    const p = predictedFrom(probs, test.labels!, ["a", "b", "c"])
    expect(p.metrics.accuracy).toBe(1)
    expect(info).toMatchObject({ train_rows: 60, features: 7, l2: 1 / 60, converged: true })
  })

  it("is deterministic: the same data gives the same bits", () => {
    const a = bagOfWordsBaseline(train, test, options)
    const b = bagOfWordsBaseline(train, test, options)
    expect([...a.probs]).toEqual([...b.probs])
    expect(a.info).toEqual(b.info)
  })

  it("reaches the optimum: the gradient of the objective vanishes", () => {
    const t = fitTfidf(train, 12, SPECIALS)
    const x = tfidfRows(t, train, SPECIALS)
    const l2 = 0.01
    const model = fitLogistic(x, train.labels!, 3, { l2, gradientTolerance: 1e-7 })
    expect(model.converged).toBe(true)
    // the bias gradient is the mean of (p - onehot): zero at the optimum
    const p = predictLogistic(model, x)
    for (let c = 0; c < 3; c++) {
      let g = 0
      for (let r = 0; r < x.rows; r++) g += p[r * 3 + c]! - (train.labels![r] === c ? 1 : 0)
      expect(Math.abs(g / x.rows)).toBeLessThan(1e-7)
    }
  })
})
