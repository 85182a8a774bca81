import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { bertConfig, createBert, disposeBert, trainOnly } from "../src/model/index.js"
import { folderCheckpointer } from "../src/train/checkpoint.js"
import { lossCurveSvg } from "../src/train/curve-svg.js"
import { type LoopSettings, trainLoop } from "../src/train/loop.js"
import {
  classificationObjective,
  mlmObjective,
  scoreMlm,
  withL2sp,
  withReplay,
} from "../src/train/objectives.js"
import { seededRng } from "../src/train/random.js"
import type { SplitArrays } from "../stages/tokenize-format.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

const tmp = mkdtempSync(join(tmpdir(), "train-loop-"))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const config = bertConfig({
  vocab_size: 20,
  hidden_size: 16,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 32,
  max_position_embeddings: 12,
  num_labels: 2,
  hidden_dropout_prob: 0,
  attention_probs_dropout_prob: 0,
})

/** Rows of [CLS]=2 tokens [SEP]=3 padding 0; the label is whether token 7 appears. */
const toyData = (rows: number, seed: number): SplitArrays => {
  const rng = seededRng(seed)
  const cols = 10
  const ids = new Uint16Array(rows * cols)
  const lengths = new Int32Array(rows)
  const labels = new Int32Array(rows)
  for (let r = 0; r < rows; r++) {
    const len = rng.int(4, cols)
    lengths[r] = len
    ids[r * cols] = 2
    let has = 0
    for (let t = 1; t < len - 1; t++) {
      const id = rng.int(5, 12)
      ids[r * cols + t] = id
      if (id === 7) has = 1
    }
    ids[r * cols + len - 1] = 3
    labels[r] = has
  }
  return { rows, cols, ids, lengths, labels }
}

const masking = { maskId: 4, vocabSize: 20, specialIds: [0, 1, 2, 3, 4] }

const settings: LoopSettings = {
  epochs: 6,
  batchSize: 16,
  seed: 1,
  lr: 3e-3,
  schedule: "linear",
  warmupSteps: 2,
  weightDecay: 0.01,
  clipNorm: 1,
}

describe("the training loop", () => {
  it("learns a learnable toy classification task: the loss falls and validation accuracy rises", async () => {
    const model = createBert(config, { seed: 3 })
    const train = toyData(96, 1)
    const validation = toyData(48, 2)
    const objective = classificationObjective(model, train, validation, 0, 1)
    const params = new Map([...model.params].filter(([n]) => trainOnly(model, ["all"]).includes(n)))
    const result = await trainLoop(model, params, objective, { ...settings, lr: 1e-2 })
    const epochs = result.log.filter((r) => r.type === "epoch")
    expect(epochs).toHaveLength(6)
    const first = epochs[0]!
    const last = epochs.at(-1)!
    expect(last.type === "epoch" && last.train_loss).toBeLessThan(
      first.type === "epoch" ? first.train_loss * 0.7 : 0,
    )
    expect(last.type === "epoch" && last.validation!.accuracy).toBeGreaterThan(0.8)
    expect(result.totalSteps).toBe(6 * 6)
    const svg = lossCurveSvg(result.log, "toy")
    expect(svg).toContain("<polyline")
    expect(svg.match(/<circle/g)?.length).toBe(6 + 1)
    disposeBert(model)
  })

  it("resumes from its checkpoint and ends with the same weights as an uninterrupted run", async () => {
    const run = async (epochs: number, dir: string) => {
      const model = createBert(config, { seed: 3 })
      const objective = classificationObjective(model, toyData(64, 1), toyData(16, 2), 0, 1)
      const params = new Map(model.params)
      const result = await trainLoop(
        model,
        params,
        objective,
        { ...settings, epochs },
        {
          checkpoint: folderCheckpointer(dir, { run: "toy" }),
        },
      )
      const weights = Object.fromEntries([...model.params].map(([n, v]) => [n, [...v.dataSync()]]))
      disposeBert(model)
      return { result, weights }
    }
    const straight = await run(3, join(tmp, "straight"))
    // An interrupted run: stop after epoch 1 by failing inside epoch 2, then resume.
    const dir = join(tmp, "interrupted")
    const model = createBert(config, { seed: 3 })
    const base = classificationObjective(model, toyData(64, 1), toyData(16, 2), 0, 1)
    let calls = 0
    const failing = {
      ...base,
      loss: (i: Int32Array, s: number) => {
        calls += 1
        if (calls === 6) throw new Error("interrupted")
        return base.loss(i, s)
      },
    }
    await expect(
      trainLoop(
        model,
        new Map(model.params),
        failing,
        { ...settings, epochs: 3 },
        { checkpoint: folderCheckpointer(dir, { run: "toy" }) },
      ),
    ).rejects.toThrow("interrupted")
    disposeBert(model)
    const resumed = await run(3, dir)
    expect(resumed.result.resumedAfterEpoch).toBe(1)
    expect(resumed.weights).toEqual(straight.weights)
    expect(resumed.result.log).toEqual(
      straight.result.log.map((r) => (r.type === "epoch" ? { ...r, seconds: expect.any(Number) } : r)),
    )
  })

  it("does not resume a checkpoint of a different run", async () => {
    const dir = join(tmp, "other")
    const model = createBert(config, { seed: 3 })
    const objective = classificationObjective(model, toyData(32, 1), undefined, 0, 1)
    await trainLoop(
      model,
      new Map(model.params),
      objective,
      { ...settings, epochs: 1 },
      { checkpoint: folderCheckpointer(dir, { run: "a" }) },
    )
    const again = await trainLoop(
      model,
      new Map(model.params),
      objective,
      { ...settings, epochs: 1 },
      { checkpoint: folderCheckpointer(dir, { run: "b" }) },
    )
    expect(again.resumedAfterEpoch).toBe(0)
    disposeBert(model)
  })

  it("stops early when validation loss stops improving and keeps the best epoch's weights", async () => {
    const model = createBert(config, { seed: 3 })
    // validation labels are noise: its loss soon rises while training loss falls
    const noisy = toyData(48, 9)
    const shuffled: SplitArrays = { ...noisy, labels: Int32Array.from(noisy.labels!, (_, i) => (i * 7) % 2) }
    const objective = classificationObjective(model, toyData(96, 1), shuffled, 0, 1)
    const result = await trainLoop(model, new Map(model.params), objective, {
      ...settings,
      epochs: 30,
      lr: 1e-2,
      earlyStopping: { patience: 2, minDelta: 0 },
    })
    expect(result.stoppedEarly).toBe(true)
    expect(result.epoch).toBeLessThan(30)
    expect(result.epoch - result.best!.epoch).toBe(2)
    disposeBert(model)
  })

  it("trains a masked-LM objective, and L2-SP and replay change the loss", async () => {
    const model = createBert(config, { seed: 4 })
    const train = { ...toyData(64, 1), labels: null }
    const before = await scoreMlm(model, train, 0, masking, 0.15, 5)
    const objective = mlmObjective(model, train, undefined, 0, masking, 0.15, 1)
    await trainLoop(model, new Map(model.params), objective, { ...settings, epochs: 4, lr: 5e-3 })
    const after = await scoreMlm(model, train, 0, masking, 0.15, 5)
    expect(after.loss).toBeLessThan(before.loss)
    expect(after.perplexity).toBeCloseTo(Math.exp(after.loss), 5)
    // identical model + seed -> identical score
    expect(await scoreMlm(model, train, 0, masking, 0.15, 5)).toEqual(after)

    const params = new Map(model.params)
    const anchor = new Map([...model.params].map(([n, v]) => [n, tf.add(v, 0.1)]))
    const cls = classificationObjective(model, toyData(16, 1), undefined, 0, 1)
    const idx = Int32Array.from([0, 1, 2, 3])
    const plain = tf.tidy(() => cls.loss(idx, 0).dataSync()[0]!)
    const penalised = tf.tidy(() => withL2sp(cls, params, anchor, 1).loss(idx, 0).dataSync()[0]!)
    const n = [...model.params.values()].reduce((a, v) => a + v.size, 0)
    expect(penalised - plain).toBeCloseTo(0.5 * n * 0.01, 2)
    const replayAll = withReplay(cls, model, train, 0, masking, {
      fraction: 1,
      weight: 1,
      rate: 0.15,
      batchSize: 8,
      seed: 1,
    })
    const replayNone = withReplay(cls, model, train, 0, masking, {
      fraction: 0,
      weight: 1,
      rate: 0.15,
      batchSize: 8,
      seed: 1,
    })
    expect(tf.tidy(() => replayNone.loss(idx, 0).dataSync()[0]!)).toBeCloseTo(plain, 6)
    expect(tf.tidy(() => replayAll.loss(idx, 0).dataSync()[0]!)).toBeGreaterThan(plain + 0.5)
    tf.dispose([...anchor.values()])
    disposeBert(model)
  })
})
