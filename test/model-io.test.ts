import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import {
  type BertConfig,
  type BertModel,
  bertConfig,
  CheckpointMismatch,
  classifierLogits,
  configToHf,
  createBert,
  disposeBert,
  encode,
  encodeSafetensors,
  fileSystemIO,
  loadBert,
  loadHfCheckpoint,
  ModelFileInvalid,
  mlmLogits,
  saveBert,
  saveHfCheckpoint,
  type TensorToWrite,
} from "../src/model/index.js"
import { f32ToF16Bits } from "../src/model/safetensors.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "pipeline-model-io-"))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

const CONFIG: BertConfig = bertConfig({
  vocab_size: 13,
  hidden_size: 8,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 12,
  max_position_embeddings: 10,
  type_vocab_size: 2,
  num_labels: 3,
})

const INPUT = {
  inputIds: tf.tensor2d(
    [
      [2, 7, 9, 3, 0],
      [2, 11, 5, 6, 3],
    ],
    undefined,
    "int32",
  ),
  attentionMask: tf.tensor2d(
    [
      [1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1],
    ],
    undefined,
    "int32",
  ),
}

/** Everything the model predicts for INPUT, as plain arrays: hidden states, class logits, MLM logits. */
const predictions = (m: BertModel) =>
  tf.tidy(() => {
    const seq = encode(m, INPUT)
    return {
      sequence: Array.from(seq.dataSync()),
      classes: Array.from(classifierLogits(m, seq).dataSync()),
      mlm: Array.from(mlmLogits(m, seq, tf.tensor1d([1, 7], "int32")).dataSync()),
    }
  })

const values = (m: BertModel, name: string) => Array.from(m.params.get(name)!.dataSync())

describe("TensorFlow.js model folders", () => {
  let model: BertModel
  beforeAll(() => {
    model = createBert(CONFIG, { seed: 5 })
  })
  afterAll(() => disposeBert(model))

  it("round-trips through model.json and shards with bit-identical predictions", async () => {
    const out = join(dir, "model")
    await saveBert(model, out, { shardBytes: 1024, metadata: { step: 120 } })
    const files = (await readdir(out)).sort()
    const total = [...model.params.values()].reduce((s, v) => s + v.size * 4, 0)
    const n = Math.ceil(total / 1024)
    expect(files).toEqual(
      ["model.json", ...Array.from({ length: n }, (_, i) => `group1-shard${i + 1}of${n}.bin`)].sort(),
    )
    const json = JSON.parse(await readFile(join(out, "model.json"), "utf8"))
    expect(json.format).toBe("pipeline-bert")
    expect(json.userDefinedMetadata.bertConfig).toEqual(CONFIG)
    expect(json.weightsManifest[0].weights[0]).toEqual({
      name: "bert.embeddings.word_embeddings.weight",
      shape: [13, 8],
      dtype: "float32",
    })

    const loaded = await loadBert(out)
    expect(loaded.metadata).toEqual({ step: 120 })
    expect(loaded.model.config).toEqual(CONFIG)
    expect(predictions(loaded.model)).toEqual(predictions(model))
    disposeBert(loaded.model)
  })

  it("replaces an existing folder whole and leaves no temporary folder behind", async () => {
    const out = join(dir, "model")
    await mkdir(out)
    await writeFile(join(out, "stale.bin"), "old")
    await saveBert(model, out)
    expect((await readdir(out)).sort()).toEqual(["group1-shard1of1.bin", "model.json"])
    expect(await readdir(dir)).toEqual(["model"])
  })

  it("says which shard bytes are missing when a shard is truncated", async () => {
    const out = join(dir, "model")
    await saveBert(model, out)
    await truncate(join(out, "group1-shard1of1.bin"), 100)
    const total = [...model.params.values()].reduce((s, v) => s + v.size * 4, 0)
    await expect(loadBert(out)).rejects.toThrow(
      new ModelFileInvalid({
        path: join(out, "model.json"),
        message:
          `${join(out, "model.json")}: weight group 1 needs ${total} bytes but its shards (group1-shard1of1.bin) ` +
          "hold 100; the folder is incomplete or the shards were mixed up: save the model again",
      }),
    )
  })

  it("says what is wrong with a folder that holds no model", async () => {
    await expect(loadBert(dir)).rejects.toThrow(
      `${join(dir, "model.json")}: cannot read the model (ENOENT: no such file or directory, open '${join(dir, "model.json")}'); is ${dir} a saved model folder?`,
    )
  })

  it("is a plain IOHandler: a tf.LayersModel saves and loads through it", async () => {
    const layers = tf.sequential({
      layers: [tf.layers.dense({ units: 3, inputShape: [4], activation: "tanh" })],
    })
    const x = tf.tensor2d([[0.5, -1, 2, 0.25]])
    await layers.save(fileSystemIO(join(dir, "layers")))
    const back = await tf.loadLayersModel(fileSystemIO(join(dir, "layers")))
    expect(Array.from((back.predict(x) as tf.Tensor).dataSync())).toEqual(
      Array.from((layers.predict(x) as tf.Tensor).dataSync()),
    )
  })
})

/** Our parameters as safetensors entries under Hugging Face names produced by `rename`. */
const hfTensors = (
  m: BertModel,
  rename: (name: string) => string | undefined,
  dtype: TensorToWrite["dtype"] = "F32",
): Record<string, TensorToWrite> => {
  const out: Record<string, TensorToWrite> = {}
  for (const [name, v] of m.params) {
    const hf = rename(name)
    if (hf !== undefined) out[hf] = { dtype, shape: v.shape, values: v.dataSync() }
  }
  return out
}

const writeCheckpoint = async (
  tensors: Record<string, TensorToWrite>,
  config: Record<string, unknown> = configToHf(CONFIG),
): Promise<void> => {
  await writeFile(join(dir, "config.json"), JSON.stringify(config))
  await writeFile(join(dir, "model.safetensors"), encodeSafetensors(tensors, { format: "pt" }))
}

/** TF1-era LayerNorm names, as bert-base-chinese has them. */
const gammaBeta = (name: string) =>
  name.replace(/LayerNorm\.weight$/, "LayerNorm.gamma").replace(/LayerNorm\.bias$/, "LayerNorm.beta")

describe("Hugging Face checkpoints", () => {
  let source: BertModel
  beforeAll(() => {
    source = createBert(CONFIG, { seed: 9 })
  })
  afterAll(() => disposeBert(source))

  it("maps a BertForPreTraining checkpoint (gamma/beta, buffers, NSP head, tied decoder) onto the encoder", async () => {
    const tensors = hfTensors(source, (n) => (n.startsWith("classifier.") ? undefined : gammaBeta(n)))
    tensors["bert.embeddings.position_ids"] = {
      dtype: "I64",
      shape: [1, 10],
      values: Array.from({ length: 10 }, (_, i) => i),
    }
    tensors["cls.seq_relationship.weight"] = { dtype: "F32", shape: [2, 8], values: new Float32Array(16) }
    tensors["cls.seq_relationship.bias"] = { dtype: "F32", shape: [2], values: new Float32Array(2) }
    tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"]!
    await writeCheckpoint(tensors)
    await writeFile(join(dir, "vocab.txt"), `${Array.from({ length: 13 }, (_, i) => `tok${i}`).join("\n")}\n`)

    const { model, report, vocabFile } = await loadHfCheckpoint(dir, { seed: 1 })
    expect(vocabFile).toBe(join(dir, "vocab.txt"))
    expect(report.initialized).toEqual(["classifier.weight", "classifier.bias"])
    expect(report.unexpected).toEqual([])
    expect(report.ignored).toEqual([
      { name: "bert.embeddings.position_ids", reason: "a constant buffer, not a weight" },
      { name: "cls.predictions.decoder.weight", reason: "tied to bert.embeddings.word_embeddings.weight" },
      { name: "cls.seq_relationship.bias", reason: "the next-sentence head" },
      { name: "cls.seq_relationship.weight", reason: "the next-sentence head" },
    ])
    expect(report.renamed).toContainEqual([
      "bert.encoder.layer.1.output.LayerNorm.gamma",
      "bert.encoder.layer.1.output.LayerNorm.weight",
    ])
    expect(report.renamed.length).toBe(2 + 2 * 2 * 2 + 2)
    for (const name of source.params.keys()) {
      if (!name.startsWith("classifier.")) expect(values(model, name)).toEqual(values(source, name))
    }
    const got = predictions(model)
    const want = predictions(source)
    expect(got.sequence).toEqual(want.sequence)
    expect(got.mlm).toEqual(want.mlm)
    disposeBert(model)
  })

  it("maps a bare BertModel checkpoint (no bert. prefix, decoder bias name) and starts the heads fresh", async () => {
    const tensors = hfTensors(source, (n) =>
      n.startsWith("bert.")
        ? n.slice("bert.".length)
        : n === "cls.predictions.bias"
          ? "cls.predictions.decoder.bias"
          : undefined,
    )
    await writeCheckpoint(tensors)
    const { model, report } = await loadHfCheckpoint(dir, { seed: 1 })
    expect(report.initialized).toEqual([
      "cls.predictions.transform.dense.weight",
      "cls.predictions.transform.dense.bias",
      "cls.predictions.transform.LayerNorm.weight",
      "cls.predictions.transform.LayerNorm.bias",
      "classifier.weight",
      "classifier.bias",
    ])
    expect(values(model, "cls.predictions.bias")).toEqual(values(source, "cls.predictions.bias"))
    expect(predictions(model).sequence).toEqual(predictions(source).sequence)
    disposeBert(model)
  })

  it("reads a checkpoint sharded over several files through model.safetensors.index.json", async () => {
    const all = hfTensors(source, (n) => n)
    const names = Object.keys(all)
    const half = Math.floor(names.length / 2)
    const shards = [names.slice(0, half), names.slice(half)]
    const weightMap: Record<string, string> = {}
    for (const [i, shard] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`
      await writeFile(join(dir, file), encodeSafetensors(Object.fromEntries(shard.map((n) => [n, all[n]!]))))
      for (const n of shard) weightMap[n] = file
    }
    await writeFile(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    )
    await writeFile(join(dir, "config.json"), JSON.stringify(configToHf(CONFIG)))
    const { model, report } = await loadHfCheckpoint(dir, { seed: 1 })
    expect(report.loaded.length).toBe(names.length)
    expect(predictions(model)).toEqual(predictions(source))
    disposeBert(model)
  })

  it("converts an F16 checkpoint's values exactly", async () => {
    await writeCheckpoint(hfTensors(source, (n) => n, "F16"))
    const { model } = await loadHfCheckpoint(dir, { seed: 1 })
    const name = "bert.encoder.layer.0.attention.self.query.weight"
    const halves = Uint16Array.from(values(source, name), f32ToF16Bits)
    const { f16ToF32 } = await import("../src/model/safetensors.js")
    expect(values(model, name)).toEqual(Array.from(f16ToF32(halves)))
    disposeBert(model)
  })

  it("round-trips through saveHfCheckpoint with bit-identical predictions", async () => {
    const out = join(dir, "hf")
    await saveHfCheckpoint(source, out, { extraFiles: [["vocab.txt", "a\nb\n"]] })
    expect((await readdir(out)).sort()).toEqual(["config.json", "model.safetensors", "vocab.txt"])
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"))
    expect(config.model_type).toBe("bert")
    expect(config.num_labels).toBe(3)
    const { model, report } = await loadHfCheckpoint(out, { seed: 1 })
    expect(report.initialized).toEqual([])
    expect(report.ignored).toEqual([])
    expect(predictions(model)).toEqual(predictions(source))
    disposeBert(model)
  })

  it("refuses a checkpoint missing encoder weights, naming them", async () => {
    await writeCheckpoint(hfTensors(source, (n) => (n.includes("layer.1.") ? undefined : n)))
    const error = await loadHfCheckpoint(dir, { seed: 1 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(CheckpointMismatch)
    const e = error as CheckpointMismatch
    expect(e.missing.length).toBe(16)
    expect(e.message).toBe(
      `${join(dir, "model.safetensors")}: the checkpoint does not fit the configuration in ${join(dir, "config.json")}\n` +
        "  missing: bert.encoder.layer.1.attention.self.query.weight, bert.encoder.layer.1.attention.self.query.bias, " +
        "bert.encoder.layer.1.attention.self.key.weight, bert.encoder.layer.1.attention.self.key.bias, " +
        "bert.encoder.layer.1.attention.self.value.weight, bert.encoder.layer.1.attention.self.value.bias, " +
        "bert.encoder.layer.1.attention.output.dense.weight, bert.encoder.layer.1.attention.output.dense.bias and 8 more\n" +
        "Check that config.json belongs to these weights and that they are a BERT model.",
    )
  })

  it("refuses weights whose shapes differ from config.json, and re-initialises a classifier for a new label count", async () => {
    await writeCheckpoint(
      hfTensors(source, (n) => n),
      { ...configToHf(CONFIG), vocab_size: 14 },
    )
    const error = (await loadHfCheckpoint(dir, { seed: 1 }).catch((e: unknown) => e)) as CheckpointMismatch
    expect(error.mismatched).toEqual([
      { name: "bert.embeddings.word_embeddings.weight", expected: [14, 8], found: [13, 8] },
      { name: "cls.predictions.bias", expected: [14], found: [13] },
    ])

    await writeCheckpoint(hfTensors(source, (n) => n))
    const { model, report } = await loadHfCheckpoint(dir, { seed: 1, numLabels: 5 })
    expect(model.params.get("classifier.weight")!.shape).toEqual([5, 8])
    expect(report.initialized).toEqual(["classifier.weight", "classifier.bias"])
    expect(report.ignored).toEqual([
      { name: "classifier.bias", reason: "sized for another label count (3)" },
      { name: "classifier.weight", reason: "sized for another label count (3x8)" },
    ])
    disposeBert(model)
  })

  it("reports unknown tensors, and refuses them when strict", async () => {
    await writeCheckpoint({
      ...hfTensors(source, (n) => n),
      "bert.adapter.weight": { dtype: "F32", shape: [1], values: [1] },
    })
    const { model, report } = await loadHfCheckpoint(dir, { seed: 1 })
    expect(report.unexpected).toEqual(["bert.adapter.weight"])
    disposeBert(model)
    const error = (await loadHfCheckpoint(dir, { seed: 1, strict: true }).catch(
      (e: unknown) => e,
    )) as CheckpointMismatch
    expect(error.unexpected).toEqual(["bert.adapter.weight"])
  })

  it("refuses a vocabulary larger than the embedding table", async () => {
    await writeCheckpoint(hfTensors(source, (n) => n))
    await writeFile(join(dir, "vocab.txt"), `${Array.from({ length: 20 }, (_, i) => `t${i}`).join("\n")}\n`)
    await expect(loadHfCheckpoint(dir, { seed: 1 })).rejects.toThrow(
      `${join(dir, "vocab.txt")}: 20 tokens, but the model has only vocab_size 13 embeddings`,
    )
  })

  it("points a folder with only pytorch_model.bin to the conversion", async () => {
    await writeFile(join(dir, "config.json"), JSON.stringify(configToHf(CONFIG)))
    await writeFile(join(dir, "pytorch_model.bin"), "")
    await expect(loadHfCheckpoint(dir, { seed: 1 })).rejects.toThrow(
      `${dir}: no model.safetensors or model.safetensors.index.json in the checkpoint folder. It has pytorch_model.bin: convert it once with Python:`,
    )
  })

  it("refuses a config.json that is not BERT's", async () => {
    await writeCheckpoint(
      hfTensors(source, (n) => n),
      { ...configToHf(CONFIG), model_type: "roberta", hidden_size: 7 },
    )
    await expect(loadHfCheckpoint(dir, { seed: 1 })).rejects.toThrow(
      `${join(dir, "config.json")}: not a usable BERT configuration:\n  - model_type is "roberta"; only "bert" checkpoints are supported`,
    )
  })
})
