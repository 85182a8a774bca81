/**
 * End-to-end: the scoring stage kinds through the real CLI — ingest → tokenize → evaluate on tiny labeled
 * reviews with tiny saved models (one whose predictions are known exactly), beside the baseline; a
 * masked-LM model refused by evaluate; and the forgetting gate passing for unchanged weights, failing
 * beyond max_drop, and passing with a warning under warn_only.
 */
import * as tf from "@tensorflow/tfjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  assignParams,
  type BertModel,
  bertConfig,
  createBert,
  disposeBert,
  saveBert,
} from "../src/model/index.js"
import { TempProject } from "./support/project.js"

const WORDS = ["the", "movie", "film", "plot", "story", "cast", "was", "very", "really", "so", "quite"]
const POSITIVE = ["good", "great"]
const NEGATIVE = ["bad", "awful"]
const VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ...WORDS, ...POSITIVE, ...NEGATIVE]

/** 80 distinct reviews: "the movie was very good" ..., labeled by their adjective. */
const reviews = (): string => {
  const rows = ["text,label"]
  for (const subject of ["movie", "film", "plot", "story", "cast"])
    for (const very of ["very", "really", "so", "quite"])
      for (const [adjectives, label] of [
        [POSITIVE, "pos"],
        [NEGATIVE, "neg"],
      ] as const)
        for (const adjective of adjectives) rows.push(`the ${subject} was ${very} ${adjective},${label}`)
  return `${rows.join("\n")}\n`
}

const corpus = (): string =>
  `${Array.from({ length: 30 }, (_, i) => `the ${WORDS[1 + (i % 5)]} was ${WORDS[7 + (i % 4)]} ${[...POSITIVE, ...NEGATIVE][i % 4]}`).join("\n")}\n`

const config = bertConfig({
  vocab_size: VOCAB.length,
  hidden_size: 16,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 32,
  max_position_embeddings: 16,
  num_labels: 2,
})
const classifier = { task: "classification", labels: ["neg", "pos"], vocab_size: VOCAB.length }

/** Save a seeded tiny model, changed by `change`, at `dir`. */
const save = async (
  p: TempProject,
  dir: string,
  metadata: Record<string, unknown>,
  change: (m: BertModel) => void = () => {},
) => {
  const model = createBert(config, { seed: 1 })
  change(model)
  await saveBert(model, p.path(dir), { metadata })
  disposeBert(model)
}

const PIPELINE = `
stages:
  ingest:
    uses: ingest
    with: {source: reviews.csv, label_field: label, split: {train: 0.7, test: 0.3}}
  tokenize:
    uses: tokenize
    with: {data: "\${stages.ingest.outs[0]}", vocab: vocab.txt, max_length: 12}
  corpus:
    uses: ingest
    with: {source: corpus.txt, split: {train: 0.5, test: 0.5}}
  corpus_tokens:
    uses: tokenize
    with: {data: "\${stages.corpus.outs[0]}", vocab: vocab.txt, max_length: 12}
  evaluate:
    uses: evaluate
    with:
      data: \${stages.tokenize.outs[0]}
      models: {random: models/random, constant: models/constant}
      batch_size: 4
  not_a_classifier:
    uses: evaluate
    with: {data: "\${stages.tokenize.outs[0]}", models: {pre: models/pre}}
  unchanged:
    uses: forgetting-check
    with: {before: models/pre, after: models/random, data: "\${stages.corpus_tokens.outs[0]}", max_drop: 0}
  gate:
    uses: forgetting-check
    with: {before: models/pre, after: models/forgot, data: "\${stages.corpus_tokens.outs[0]}", metric: loss, max_drop: 1}
  warned:
    uses: forgetting-check
    with:
      before: models/pre
      after: models/forgot
      data: \${stages.corpus_tokens.outs[0]}
      metric: loss
      max_drop: 1
      warn_only: true
`

let project: TempProject
let result: Awaited<ReturnType<TempProject["runJson"]>>
beforeAll(async () => {
  await tf.setBackend("cpu")
  project = await TempProject.create({
    "reviews.csv": reviews(),
    "corpus.txt": corpus(),
    "vocab.txt": `${VOCAB.join("\n")}\n`,
    "pipeline.yaml": PIPELINE,
  })
  await save(project, "models/pre", { task: "mlm", vocab_size: VOCAB.length })
  // the same weights with the classification metadata: a "fine-tuned" model that forgot nothing
  await save(project, "models/random", classifier)
  // a zero classifier with bias [1, 0]: every row gets p(neg) = e / (1 + e); saved as a stage's out folder
  await save(project, "models/constant/model", classifier, (m) =>
    assignParams(
      m,
      new Map([
        ["classifier.weight", tf.zeros([2, 16])],
        ["classifier.bias", tf.tensor1d([1, 0])],
      ]),
    ),
  )
  // a decoder bias of 60 on [PAD]: the masked-LM head predicts nothing right any more
  await save(project, "models/forgot", classifier, (m) => {
    const bias = new Float32Array(VOCAB.length)
    bias[0] = 60
    assignParams(m, new Map([["cls.predictions.bias", tf.tensor1d(bias)]]))
  })
  result = await project.runJson(["--keep-going"])
})
afterAll(() => project?.remove())

const json = async (path: string) => JSON.parse(await project.read(path))
const log = (stage: string) => project.read(`runs/${result.summary.run}/${stage}.log`)

describe("evaluate", () => {
  it("scores every model on the same examples, the last listed as the primary, beside the baseline", async () => {
    expect(result.summary.stages.evaluate?.status, await log("evaluate")).toBe("ran")
    // one copy of TensorFlow.js: nothing before the backend line (a second copy re-registers every kernel)
    expect(await log("evaluate")).toMatch(/^backend (tensorflow|webgpu|wasm|cpu): /)
    const test = (await project.read("outputs/pipeline/ingest/test.jsonl"))
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as { text: string; label: string })
    const rows = test.length
    const neg = test.filter((r) => r.label === "neg").length
    const m = await json("outputs/pipeline/evaluate/metrics.json")
    expect(m).toMatchObject({ split: "test", examples: rows, labels: ["neg", "pos"], primary: "constant" })
    expect(Object.keys(m.models)).toEqual(["random", "constant"])
    // the constant model: always neg with probability e / (1 + e)
    const c = m.models.constant
    const share = neg / rows
    expect(c.confusion).toEqual([
      [neg, 0],
      [rows - neg, 0],
    ])
    expect(c.accuracy).toBe(Number(share.toFixed(6)))
    expect(c.f1_macro).toBeCloseTo(share / (1 + share), 6)
    expect(c.loss).toBeCloseTo(Math.log(1 + Math.E) - 1 + (1 - share), 5)
    expect([m.accuracy, m.f1_macro, m.loss]).toEqual([c.accuracy, c.f1_macro, c.loss])
    expect(c.per_label.pos).toEqual({ precision: 0, recall: 0, f1: 0, support: rows - neg })
    // the random model's predictions differ from neg exactly where it says pos
    const r = m.models.random
    expect(r.confusion[0][0] + r.confusion[0][1] + r.confusion[1][0] + r.confusion[1][1]).toBe(rows)
    const saysPos = r.confusion[0][1] + r.confusion[1][1]
    expect(m.listed).toBe("disagreements")
    expect(m.disagreements).toBe(saysPos)
    expect(m.disagreement_examples.length).toBe(Math.min(10, saysPos))
    const texts = new Map(test.map((t) => [t.text, t.label]))
    for (const e of m.disagreement_examples) {
      expect(texts.get(e.text)).toBe(e.label)
      expect(e.predictions.constant).toEqual({ label: "neg", probability: 0.731059 })
      expect(e.predictions.random.label).toBe("pos")
    }
    // a bag of words separates the adjectives perfectly
    expect(m.baseline).toMatchObject({ accuracy: 1, f1_macro: 1, loss: expect.any(Number) })
    expect(m.baseline.info).toMatchObject({ method: "tf-idf + logistic regression (L2)", converged: true })
    expect(m.baseline.info.features).toBe(WORDS.length + 4)
    expect(["tensorflow", "webgpu", "wasm", "cpu"]).toContain(m.backend.name)
    const report = await project.read("outputs/pipeline/evaluate/report.md")
    expect(report).toContain(`| **constant** (primary) | ${(share * 100).toFixed(1)}% |`)
    expect(report).toContain("| baseline: TF-IDF + logistic regression | 100.0% |")
    expect(report).toContain("## Where the models disagree")
  })

  it("refuses a masked-LM model, saying to train it first", async () => {
    expect(result.summary.stages.not_a_classifier?.status).toBe("failed")
    expect(await log("not_a_classifier")).toBe(
      [
        'error: models.pre: this is a masked-LM model (task "mlm"), not a classifier',
        `   Fine-tune it on labeled data with a \`train\` stage first, and evaluate that stage's out (\${stages.train.outs[0]}).`,
        "",
      ].join("\n"),
    )
  })
})

describe("forgetting-check", () => {
  it("passes with identical masked-LM weights: every drop is 0", async () => {
    expect(result.summary.stages.unchanged?.status, await log("unchanged")).toBe("ran")
    const f = await json("outputs/pipeline/unchanged/forgetting.json")
    expect(f.after).toEqual(f.before)
    expect(f.drop).toEqual({ masked_accuracy: 0, loss: 0, perplexity: 0 })
    expect(f).toMatchObject({ split: "test", metric: "masked_accuracy", max_drop: 0, passed: true })
    expect(f.retention.loss).toBe(1)
    expect(f.masked_tokens).toBeGreaterThanOrEqual(f.rows)
  })

  it("fails beyond max_drop, with the numbers and what to do", async () => {
    expect(result.code).toBe(1)
    expect(result.summary.stages.gate?.status).toBe("failed")
    expect(project.exists("outputs/pipeline/gate")).toBe(false)
    expect(await log("gate")).toMatch(
      /error: forgetting check failed: loss went from [\d.]+ to [\d.]+: a drop of [\d.]+, more than max_drop 1 \(retention [\d.]+%\)\n {3}The fine-tuned model forgot general language\. Lower the learning rate, freeze more layers, or add replay or l2sp in the train stage; or raise max_drop \(or set warn_only: true\) if this drop is acceptable\.\n$/,
    )
  })

  it("passes under warn_only, reporting passed: false and a warning", async () => {
    expect(result.summary.stages.warned?.status).toBe("ran")
    const f = await json("outputs/pipeline/warned/forgetting.json")
    expect(f).toMatchObject({ metric: "loss", max_drop: 1, passed: false, warn_only: true })
    expect(f.drop.loss).toBeGreaterThan(40)
    expect(f.after.masked_accuracy).toBe(0)
    expect(f.drop.loss).toBeCloseTo(f.after.loss - f.before.loss, 5)
    expect(f.retention.loss).toBeCloseTo(f.before.loss / f.after.loss, 5)
    expect(await log("warned")).toContain("warning: forgetting beyond max_drop (warn_only): loss went from")
  })
})
