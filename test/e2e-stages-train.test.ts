/**
 * End-to-end: the training stage kinds `pretrain`, `freeze` and `train` through the real CLI, on the
 * Chinese review set (CJK handled from raw text to a fine-tuned classifier), with tiny models so it runs
 * in seconds: outputs and their fields, caching, a train parameter rerunning only train, and bad inputs
 * failing with what to do.
 */

import { execFileSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { bin, repoRoot, statuses, TempProject, until } from "./support/project.js"

let project: TempProject | undefined
afterEach(async () => {
  await project?.remove()
  project = undefined
})

const fixture = (name: string) => readFileSync(join(repoRoot, "test/fixtures/stages", name), "utf8")
const jsonOf = async (p: TempProject, path: string) => JSON.parse(await p.read(path))

/** ingest (labeled and as a corpus) -> tokenize -> pretrain -> freeze -> train, all tiny. */
const pipeline = (train = "", freeze = "trainable_layers: 1") => `
params:
  lr: 0.003
stages:
  reviews:
    uses: ingest
    with:
      source: data/reviews.csv
      label_field: label
      split: {train: 0.6, validation: 0.2, test: 0.2}
  corpus:
    uses: ingest
    with:
      source: data/reviews.csv
      split: {train: 0.8, validation: 0.2}
  corpus_tokens:
    uses: tokenize
    with:
      data: \${stages.corpus.outs[0]}
      train_vocab: {vocab_size: 300, min_frequency: 1}
      max_length: 24
  review_tokens:
    uses: tokenize
    with:
      data: \${stages.reviews.outs[0]}
      vocab: \${stages.corpus_tokens.outs[0]}/tokenizer.json
      max_length: 24
  pretrain:
    uses: pretrain
    with:
      data: \${stages.corpus_tokens.outs[0]}
      model: {hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2}
      epochs: 2
      batch_size: 8
      learning_rate: 0.003
  freeze:
    uses: freeze
    with:
      model: \${stages.pretrain.outs[0]}
      ${freeze}
  train:
    uses: train
    with:
      model: \${stages.pretrain.outs[0]}
      data: \${stages.review_tokens.outs[0]}
      freeze: \${stages.freeze.outs[0]}
      epochs: 3
      batch_size: 8
      learning_rate: \${params.lr}
      seed: 1${train}
`

/** Whether the train stage has a checkpoint in its scratch folder (the scratch journal names each folder's stage). */
const checkpointed = (p: TempProject): boolean => {
  const scratch = p.path(".pipeline/scratch")
  if (!existsSync(`${scratch}/owners.jsonl`)) return false
  return readFileSync(`${scratch}/owners.jsonl`, "utf8")
    .split("\n")
    .some((line) => {
      let owner: { fp?: string; stage?: string } = {}
      try {
        owner = JSON.parse(line)
      } catch {
        return false // being written
      }
      return owner.stage === "train" && existsSync(`${scratch}/${owner.fp}/checkpoints/latest.json`)
    })
}

describe("pretrain, freeze and train on Chinese reviews", () => {
  it("resumes an interrupted train stage from its last checkpoint and ends where an uninterrupted run ends", async () => {
    const yaml = pipeline().replace("epochs: 3\n      batch_size: 8\n", "epochs: 12\n      batch_size: 4\n")
    expect(yaml).toContain("epochs: 12")
    const straight = await TempProject.create({
      "data/reviews.csv": fixture("reviews-zh.csv"),
      "pipeline.yaml": yaml,
    })
    try {
      const r = await straight.runJson()
      expect(r.code, r.stderr).toBe(0)
      project = await TempProject.create({
        "data/reviews.csv": fixture("reviews-zh.csv"),
        "pipeline.yaml": yaml,
      })
      const p = project
      const child = p.spawn(["run"])
      const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)))
      await until(() => checkpointed(p), "the train stage's first checkpoint", 120_000)
      child.kill("SIGINT")
      expect(await exited).toBe(130)
      expect(p.exists("outputs/pipeline/train")).toBe(false)

      const again = await p.run(["run"])
      expect(again.code, again.stderr).toBe(0)
      expect(again.stdout + again.stderr).toMatch(/\[train\] resumed=after epoch \d+ \(checkpoint\)/)
      for (const file of ["log.jsonl", "metrics.json", "model/model.json"]) {
        const strip = (t: string) => t.replace(/"(seconds|examples_per_second)":\s*[0-9.e+-]+/g, "")
        expect(strip(await p.read(`outputs/pipeline/train/${file}`)), file).toBe(
          strip(await straight.read(`outputs/pipeline/train/${file}`)),
        )
      }
      const shard = (t: TempProject) =>
        readFileSync(t.path("outputs/pipeline/train/model/group1-shard1of1.bin"))
      expect(shard(p).equals(shard(straight))).toBe(true)
      // the finished stage's scratch folder is gone
      expect(checkpointed(p)).toBe(false)
    } finally {
      await straight.remove()
    }
  }, 240_000)

  it("pretrains, freezes the bottom layer, fine-tunes, and writes every output", async () => {
    project = await TempProject.create({
      "data/reviews.csv": fixture("reviews-zh.csv"),
      "pipeline.yaml": pipeline(`
      early_stopping: {patience: 2}
      l2sp: 0.01
      replay: {data: "\${stages.corpus_tokens.outs[0]}", fraction: 0.5}`),
    })
    const r = await project.runJson()
    expect(r.code, r.stderr).toBe(0)
    const out = "outputs/pipeline"

    const pre = await jsonOf(project, `${out}/pretrain/metrics.json`)
    expect(pre).toMatchObject({ task: "mlm", epochs: 2, backend: expect.any(String) })
    expect(pre.steps).toBe(2 * Math.ceil(30 / 8))
    expect(pre.validation.perplexity).toBeCloseTo(Math.exp(pre.validation.loss), 4)
    const preModel = await jsonOf(project, `${out}/pretrain/model/model.json`)
    expect(preModel.userDefinedMetadata.bertConfig).toMatchObject({ vocab_size: 201, hidden_size: 16 })
    expect(await project.read(`${out}/pretrain/tokenizer.json`)).toBe(
      await project.read(`${out}/corpus_tokens/tokenizer.json`),
    )

    const freeze = await jsonOf(project, `${out}/freeze/freeze.json`)
    expect(freeze.selectors).toEqual(["pooler", "classifier", "layer.1"])
    expect(freeze.trainable.some((n: string) => n.startsWith("bert.encoder.layer.0."))).toBe(false)
    expect(freeze.trainable).toContain("bert.encoder.layer.1.output.dense.weight")
    expect(freeze.counts.trainable).toBeLessThan(freeze.counts.total)
    expect(freeze.counts.by_part.embeddings.trainable).toBe(0)

    const metrics = await jsonOf(project, `${out}/train/metrics.json`)
    expect(metrics).toMatchObject({ task: "classification", labels: ["negative", "positive"], l2sp: 0.01 })
    expect(metrics.validation.accuracy).toBeGreaterThanOrEqual(0)
    expect(metrics.trainable_parameters).toBeLessThan(metrics.parameters.total)
    const log = (await project.read(`${out}/train/log.jsonl`))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
    expect(log.filter((l) => l.type === "step")).toHaveLength(metrics.steps)
    expect(log.filter((l) => l.type === "epoch")).toHaveLength(metrics.epochs)
    expect(log[0]).toMatchObject({ type: "step", epoch: 1, step: 1 })
    expect(await project.read(`${out}/train/loss.svg`)).toMatch(/^<svg[\s\S]*<\/svg>\n$/)
    const model = await jsonOf(project, `${out}/train/model/model.json`)
    expect(model.userDefinedMetadata.metadata).toMatchObject({
      task: "classification",
      labels: ["negative", "positive"],
    })

    // the frozen layer did not move; a trained one did
    const weights = (dir: string) => {
      const m = JSON.parse(readFileSync(project!.path(`${dir}/model.json`), "utf8"))
      const specs = m.weightsManifest.flatMap(
        (g: { weights: Array<{ name: string; shape: number[] }> }) => g.weights,
      )
      const bytes = Buffer.concat(
        m.weightsManifest.flatMap((g: { paths: string[] }) =>
          g.paths.map((p) => readFileSync(project!.path(`${dir}/${p}`))),
        ),
      )
      const floats = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
      const byName = new Map<string, Float32Array>()
      let at = 0
      for (const s of specs) {
        const n = s.shape.reduce((a: number, b: number) => a * b, 1)
        byName.set(s.name, floats.slice(at, at + n))
        at += n
      }
      return byName
    }
    const before = weights(`${out}/pretrain/model`)
    const after = weights(`${out}/train/model`)
    const frozen = "bert.encoder.layer.0.attention.self.query.weight"
    const trained = "bert.encoder.layer.1.attention.self.query.weight"
    expect([...after.get(frozen)!]).toEqual([...before.get(frozen)!])
    expect([...after.get(trained)!]).not.toEqual([...before.get(trained)!])

    const again = await project.runJson()
    expect(Object.values(statuses(again.summary)).every((s) => s === "cached")).toBe(true)

    // a train parameter reruns train only
    const changed = await project.runJson(["--set", "lr=0.001"])
    expect(changed.code, changed.stderr).toBe(0)
    const ran = Object.entries(statuses(changed.summary))
      .filter(([, s]) => s !== "cached")
      .map(([n]) => n)
    expect(ran).toEqual(["train"])
  }, 120_000)

  it("reports a task tokenized with another vocabulary, and a freeze wider than the model", async () => {
    project = await TempProject.create({
      "data/reviews.csv": fixture("reviews-zh.csv"),
      "pipeline.yaml": pipeline().replace(
        "vocab: $" + "{stages.corpus_tokens.outs[0]}/tokenizer.json",
        "train_vocab: {vocab_size: 200, min_frequency: 1}",
      ),
    })
    const r = await project.run(["run", "--keep-going"])
    expect(r.code).toBe(1)
    expect(r.stdout + r.stderr).toMatch(/tokenized with \d+ tokens, the model's vocabulary has \d+/)
    expect(r.stdout + r.stderr).toContain("Tokenize the task data with the model's vocabulary")

    await project.write("pipeline.yaml", pipeline("", "trainable_layers: 5"))
    const wide = await project.run(["run"])
    expect(wide.code).toBe(1)
    expect(wide.stdout + wide.stderr).toContain(
      "with.trainable_layers: 5, but the model has 2 encoder layers",
    )
  }, 120_000)

  it("rejects conflicting settings before anything runs", async () => {
    project = await TempProject.create({
      "data/reviews.csv": fixture("reviews-zh.csv"),
      "pipeline.yaml": pipeline(`
      warmup_steps: 2
      warmup_ratio: 0.1`),
    })
    const r = await project.run(["run"])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('both "warmup_steps" and "warmup_ratio" are set')
    expect(project.exists("outputs")).toBe(false)
  })
})

describe("the shipped fine-tuning pipelines", () => {
  it.each([
    ["spam-finetune", ["pretrain", "train", "probe", "evaluate", "forgetting"]],
    ["freeze-sweep", ["train_head", "train_top", "train_all", "forget_all", "evaluate"]],
  ])("%s loads, resolves and lists its stages", (name, stages) => {
    const out = execFileSync(process.execPath, [bin, "dag", name, "--root", repoRoot], { encoding: "utf8" })
    for (const stage of stages) expect(out).toMatch(new RegExp(`^  ${stage}\\b`, "m"))
  })
})
