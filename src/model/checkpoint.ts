/**
 * Hugging Face checkpoint folders: `config.json` + `model.safetensors` (or a sharded
 * `model.safetensors.index.json`) + optional `vocab.txt`, read into the encoder and written back out.
 *
 * Checkpoint names are mapped onto ours (`bertParamName`): a missing `bert.` prefix (a bare `BertModel`)
 * is added, the TF1-era `LayerNorm.gamma`/`beta` become `weight`/`bias`, `cls.predictions.decoder.bias`
 * is the MLM bias. Tensors we deliberately do not use are "ignored" with a reason (the `position_ids`
 * buffer, the next-sentence head, the decoder weight tied to the word embeddings); any other unknown name
 * is "unexpected". Missing encoder weights are an error; missing heads (pooler, MLM, classifier) start
 * fresh, which is what fine-tuning a pre-trained encoder for a new task needs.
 */
import { access, readFile } from "node:fs/promises"
import { join } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { type BertModel, createBert } from "./bert.js"
import { type BertConfig, bertConfig, configToHf, readHfConfig } from "./config.js"
import { CheckpointMismatch, ModelFileInvalid, type ShapeMismatch } from "./errors.js"
import { writeDirAtomic } from "./files.js"
import { paramPart, paramSpecs } from "./params.js"
import {
  encodeSafetensors,
  readSafetensors,
  type SafetensorsFile,
  type TensorToWrite,
} from "./safetensors.js"

/** What a checkpoint name means for the encoder. */
export type NameMapping =
  | { readonly kind: "param"; readonly name: string }
  | { readonly kind: "ignored"; readonly reason: string }
  | { readonly kind: "unknown" }

/** Map one checkpoint tensor name onto our parameter names (`known`). */
export const bertParamName = (hfName: string, known: ReadonlySet<string>): NameMapping => {
  let name = hfName
    .replace(/\.LayerNorm\.gamma$/, ".LayerNorm.weight")
    .replace(/\.LayerNorm\.beta$/, ".LayerNorm.bias")
  if (/^(embeddings|encoder|pooler)\./.test(name)) name = `bert.${name}`
  if (name === "bert.embeddings.position_ids")
    return { kind: "ignored", reason: "a constant buffer, not a weight" }
  if (name.startsWith("cls.seq_relationship.")) return { kind: "ignored", reason: "the next-sentence head" }
  if (name === "cls.predictions.decoder.weight") {
    return { kind: "ignored", reason: "tied to bert.embeddings.word_embeddings.weight" }
  }
  if (name === "cls.predictions.decoder.bias") name = "cls.predictions.bias"
  return known.has(name) ? { kind: "param", name } : { kind: "unknown" }
}

/** What loading a checkpoint did. */
export interface LoadReport {
  /** our parameters filled from the checkpoint */
  readonly loaded: ReadonlyArray<string>
  /** checkpoint names read under another name: [checkpoint name, our name] */
  readonly renamed: ReadonlyArray<readonly [string, string]>
  /** head parameters the checkpoint lacks (or whose label count changed), initialised fresh */
  readonly initialized: ReadonlyArray<string>
  /** checkpoint tensors deliberately left unused */
  readonly ignored: ReadonlyArray<{ readonly name: string; readonly reason: string }>
  /** checkpoint tensors that match no parameter */
  readonly unexpected: ReadonlyArray<string>
}

/** A loaded checkpoint. */
export interface HfCheckpoint {
  readonly model: BertModel
  readonly config: BertConfig
  readonly report: LoadReport
  /** the folder's `vocab.txt`, when it has one */
  readonly vocabFile?: string
}

/** Options for `loadHfCheckpoint`. */
export interface LoadHfOptions {
  /** seeds the parameters the checkpoint does not have */
  readonly seed: number
  /**
   * The classifier's label count for this task; overrides `config.json`. A checkpoint classifier of
   * another size is then re-initialised instead of refused.
   */
  readonly numLabels?: number
  /** refuse checkpoint tensors that match no parameter (default: report them) */
  readonly strict?: boolean
}

const LIST_LIMIT = 8

const listNames = (names: ReadonlyArray<string>): string =>
  names.length <= LIST_LIMIT
    ? names.join(", ")
    : `${names.slice(0, LIST_LIMIT).join(", ")} and ${names.length - LIST_LIMIT} more`

/** The lines that explain a mismatch, for error messages. */
export const describeMismatch = (
  missing: ReadonlyArray<string>,
  unexpected: ReadonlyArray<string>,
  mismatched: ReadonlyArray<ShapeMismatch>,
): string =>
  [
    ...(missing.length > 0 ? [`  missing: ${listNames(missing)}`] : []),
    ...(unexpected.length > 0 ? [`  unexpected: ${listNames(unexpected)}`] : []),
    ...mismatched
      .slice(0, LIST_LIMIT)
      .map(
        (m) =>
          `  ${m.name}: the configuration needs [${m.expected.join(", ")}], the checkpoint has [${m.found.join(", ")}]`,
      ),
  ].join("\n")

const exists = async (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  )

/** The safetensors files of a checkpoint folder, single or sharded. */
const weightFiles = async (dir: string): Promise<Array<string>> => {
  const single = join(dir, "model.safetensors")
  if (await exists(single)) return [single]
  const indexPath = join(dir, "model.safetensors.index.json")
  let indexText: string | undefined
  try {
    indexText = await readFile(indexPath, "utf8")
  } catch {
    indexText = undefined
  }
  if (indexText !== undefined) {
    let weightMap: unknown
    try {
      weightMap = (JSON.parse(indexText) as { weight_map?: unknown }).weight_map
    } catch (e) {
      throw new ModelFileInvalid({
        path: indexPath,
        message: `${indexPath}: not valid JSON: ${(e as Error).message}`,
      })
    }
    if (typeof weightMap !== "object" || weightMap === null) {
      throw new ModelFileInvalid({ path: indexPath, message: `${indexPath}: weight_map is missing` })
    }
    return [...new Set(Object.values(weightMap as Record<string, unknown>).map(String))].map((f) =>
      join(dir, f),
    )
  }
  const hint = (await exists(join(dir, "pytorch_model.bin")))
    ? " It has pytorch_model.bin: convert it once with Python: " +
      "`from transformers import AutoModel; AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`."
    : ""
  throw new ModelFileInvalid({
    path: dir,
    message: `${dir}: no model.safetensors or model.safetensors.index.json in the checkpoint folder.${hint}`,
  })
}

/** Lines in a `vocab.txt`, the last one not counted when empty. */
const vocabSize = (text: string): number => {
  const lines = text.split("\n")
  return lines.at(-1) === "" ? lines.length - 1 : lines.length
}

/**
 * Load a Hugging Face BERT checkpoint folder into a new model. Throws `CheckpointMismatch` when encoder
 * weights are missing or shapes differ, and `ModelFileInvalid`/`SafetensorsInvalid`/`ModelConfigInvalid`
 * for unreadable files.
 */
export const loadHfCheckpoint = async (dir: string, options: LoadHfOptions): Promise<HfCheckpoint> => {
  const configPath = join(dir, "config.json")
  const fileConfig = await readHfConfig(configPath)
  const config =
    options.numLabels === undefined
      ? fileConfig
      : bertConfig({ ...fileConfig, num_labels: options.numLabels }, configPath)
  const specs = new Map(paramSpecs(config).map((s) => [s.name, s.shape]))
  const known = new Set(specs.keys())

  const files: Array<SafetensorsFile> = []
  for (const path of await weightFiles(dir)) files.push(await readSafetensors(path))

  const sources = new Map<string, { file: SafetensorsFile; hfName: string }>()
  const renamed: Array<readonly [string, string]> = []
  const ignored: Array<{ name: string; reason: string }> = []
  const unexpected: Array<string> = []
  const mismatched: Array<ShapeMismatch> = []
  const initialized: Array<string> = []
  for (const file of files) {
    for (const [hfName, info] of file.tensors) {
      const mapped = bertParamName(hfName, known)
      if (mapped.kind === "ignored") {
        ignored.push({ name: hfName, reason: mapped.reason })
        continue
      }
      if (mapped.kind === "unknown") {
        unexpected.push(hfName)
        continue
      }
      if (sources.has(mapped.name)) {
        ignored.push({ name: hfName, reason: `a second copy of ${mapped.name}` })
        continue
      }
      const expected = specs.get(mapped.name)!
      if (!tf.util.arraysEqual(info.shape as Array<number>, expected as Array<number>)) {
        const relabelled = paramPart(mapped.name) === "classifier" && options.numLabels !== undefined
        if (relabelled) {
          ignored.push({ name: hfName, reason: `sized for another label count (${info.shape.join("x")})` })
        } else {
          mismatched.push({ name: mapped.name, expected, found: info.shape })
        }
        continue
      }
      if (mapped.name !== hfName) renamed.push([hfName, mapped.name])
      sources.set(mapped.name, { file, hfName })
    }
  }
  const missing: Array<string> = []
  for (const name of known) {
    if (sources.has(name)) continue
    const part = paramPart(name)
    if (part === "embeddings" || part === "encoder") missing.push(name)
    else initialized.push(name)
  }
  const refusedExtras = options.strict === true ? unexpected : []
  if (missing.length > 0 || mismatched.length > 0 || refusedExtras.length > 0) {
    const where = files.map((f) => f.file).join(", ")
    throw new CheckpointMismatch({
      path: dir,
      missing,
      unexpected: refusedExtras,
      mismatched,
      message:
        `${where}: the checkpoint does not fit the configuration in ${configPath}\n` +
        `${describeMismatch(missing, refusedExtras, mismatched)}\n` +
        "Check that config.json belongs to these weights and that they are a BERT model.",
    })
  }

  const vocabPath = join(dir, "vocab.txt")
  let vocabFile: string | undefined
  try {
    const tokens = vocabSize(await readFile(vocabPath, "utf8"))
    if (tokens > config.vocab_size) {
      throw new ModelFileInvalid({
        path: vocabPath,
        message: `${vocabPath}: ${tokens} tokens, but the model has only vocab_size ${config.vocab_size} embeddings`,
      })
    }
    vocabFile = vocabPath
  } catch (e) {
    if (e instanceof ModelFileInvalid) throw e
  }

  const values = new Map<string, tf.Tensor>()
  try {
    for (const [name, { file, hfName }] of sources) {
      const decoded = file.read(hfName)
      values.set(name, tf.tensor(decoded.values, decoded.shape as Array<number>, decoded.dtype))
    }
    const model = createBert(config, { seed: options.seed, values })
    const report: LoadReport = { loaded: [...sources.keys()], renamed, initialized, ignored, unexpected }
    return { model, config, report, ...(vocabFile === undefined ? {} : { vocabFile }) }
  } finally {
    tf.dispose([...values.values()])
  }
}

/** Options for `saveHfCheckpoint`. */
export interface SaveHfOptions {
  /** the stored float type; F32 unless given */
  readonly dtype?: "F32" | "F16" | "BF16"
  /** more files for the folder (a `vocab.txt`), written in the same atomic save */
  readonly extraFiles?: ReadonlyArray<readonly [string, Uint8Array | string]>
}

/**
 * Write the model as a Hugging Face checkpoint folder (`config.json` + `model.safetensors`) that
 * Transformers' `BertForMaskedLM`/`BertForSequenceClassification.from_pretrained` reads; the tied decoder
 * weight is not stored, as Transformers does not store it.
 */
export const saveHfCheckpoint = async (
  model: BertModel,
  dir: string,
  options: SaveHfOptions = {},
): Promise<void> => {
  const tensors: Record<string, TensorToWrite> = {}
  for (const [name, v] of model.params) {
    tensors[name] = { dtype: options.dtype ?? "F32", shape: v.shape, values: v.dataSync() as Float32Array }
  }
  await writeDirAtomic(dir, [
    ["config.json", `${JSON.stringify(configToHf(model.config), null, 2)}\n`],
    ["model.safetensors", encodeSafetensors(tensors, { format: "pt" })],
    ...(options.extraFiles ?? []),
  ])
}
