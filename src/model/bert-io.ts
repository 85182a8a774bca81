/**
 * Saving and loading the encoder in the TensorFlow.js format through `fileSystemIO`: the weights as
 * float32 shards under their Hugging Face names, the configuration in `model.json`'s
 * `userDefinedMetadata.bertConfig`. Values round-trip bit for bit, so predictions do too.
 */
import * as tf from "@tensorflow/tfjs"
import { type BertModel, createBert } from "./bert.js"
import { describeMismatch } from "./checkpoint.js"
import { type BertConfig, configFromHf } from "./config.js"
import { CheckpointMismatch, ModelFileInvalid } from "./errors.js"
import { paramSpecs } from "./params.js"
import { type FileSystemIOOptions, fileSystemIO, MODEL_JSON } from "./tfjs-io.js"

/** The `format` field of our `model.json`. */
export const BERT_FORMAT = "pipeline-bert"

/** Options for `saveBert`. */
export interface SaveBertOptions extends FileSystemIOOptions {
  /** JSON-able facts to keep with the model (training step, vocabulary digest, ...) */
  readonly metadata?: Readonly<Record<string, unknown>>
}

/** Save the model to the folder `dir` (replacing it atomically). */
export const saveBert = async (
  model: BertModel,
  dir: string,
  options: SaveBertOptions = {},
): Promise<void> => {
  const { data, specs } = await tf.io.encodeWeights(Object.fromEntries(model.params))
  const userDefinedMetadata: Record<string, {}> = { bertConfig: model.config }
  if (options.metadata !== undefined) userDefinedMetadata.metadata = options.metadata
  await fileSystemIO(dir, options).save!({
    modelTopology: { class_name: "BertModel" },
    format: BERT_FORMAT,
    generatedBy: `TensorFlow.js tfjs-core v${tf.version_core}`,
    convertedBy: null,
    weightSpecs: specs,
    weightData: data,
    userDefinedMetadata,
  })
}

/** A loaded model and the metadata saved with it. */
export interface LoadedBert {
  readonly model: BertModel
  readonly metadata: Readonly<Record<string, unknown>>
}

/** Load a model saved by `saveBert`. */
export const loadBert = async (dir: string): Promise<LoadedBert> => {
  const artifacts = await fileSystemIO(dir).load!()
  const jsonPath = `${dir}/${MODEL_JSON}`
  if (artifacts.format !== BERT_FORMAT) {
    throw new ModelFileInvalid({
      path: jsonPath,
      message: `${jsonPath}: format is ${JSON.stringify(artifacts.format)}, not "${BERT_FORMAT}"; it was not saved by this tool`,
    })
  }
  const meta = (artifacts.userDefinedMetadata ?? {}) as Record<string, unknown>
  const config: BertConfig = configFromHf(meta.bertConfig, `${jsonPath} (userDefinedMetadata.bertConfig)`)
  const specs = artifacts.weightSpecs ?? []
  const expected = new Map(paramSpecs(config).map((s) => [s.name, s.shape]))
  const found = new Map(specs.map((s) => [s.name, s.shape]))
  const missing = [...expected.keys()].filter((n) => !found.has(n))
  const unexpected = [...found.keys()].filter((n) => !expected.has(n))
  const mismatched = [...found]
    .filter(([n, shape]) => expected.has(n) && !tf.util.arraysEqual(shape, expected.get(n) as Array<number>))
    .map(([name, shape]) => ({ name, expected: expected.get(name)!, found: shape }))
  if (missing.length > 0 || unexpected.length > 0 || mismatched.length > 0) {
    throw new CheckpointMismatch({
      path: jsonPath,
      missing,
      unexpected,
      mismatched,
      message: `${jsonPath}: the weights do not match the configuration saved with them\n${describeMismatch(missing, unexpected, mismatched)}`,
    })
  }
  const tensors = tf.io.decodeWeights(artifacts.weightData!, specs)
  try {
    const model = createBert(config, { seed: 0, values: new Map(Object.entries(tensors)) })
    return { model, metadata: (meta.metadata ?? {}) as Record<string, unknown> }
  } finally {
    tf.dispose(tensors)
  }
}
