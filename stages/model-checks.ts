/**
 * Does a saved model fit a tokenized dataset? The checks the scoring stages (evaluate, forgetting-check)
 * make before computing anything, each failing with what is wrong and what to do. They read only the
 * model's `model.json` (not its weights), so every model is checked before the first one is scored. The
 * metadata written by the training stages with `saveBert` says a model's task and labels; its
 * configuration says its vocabulary size.
 */
import { readFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { MODEL_JSON } from "../src/model/tfjs-io.js"
import { MODEL_DIR, modelFolder } from "../src/train/model-dir.js"
import { StageInputError } from "./api.js"
import type { TokensManifest } from "./tokenize-format.js"

/** What `model.json` says of a model. */
export interface ModelInfo {
  /** the folder holding model.json, absolute */
  readonly folder: string
  readonly vocabSize: number
  readonly numLabels: number
  readonly metadata: Readonly<Record<string, unknown>>
}

const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x)

/**
 * Read the model named `path` (project-relative) in `with:` at `what`: a training stage's out folder or
 * the `model/` folder in it.
 */
export const readModelInfo = async (root: string, path: string, what: string): Promise<ModelInfo> => {
  const folder = await modelFolder(resolve(root, path), what, path)
  let json: unknown
  try {
    json = JSON.parse(await readFile(join(folder, MODEL_JSON), "utf8"))
  } catch (e) {
    throw new StageInputError(
      `${what}: ${join(path, folder === resolve(root, path) ? "" : MODEL_DIR, MODEL_JSON)} is not valid JSON (${e instanceof Error ? e.message : String(e)})\n   Rerun the stage that wrote the model (pipeline run --force-stage <name>).`,
    )
  }
  const meta = isRecord(json) && isRecord(json.userDefinedMetadata) ? json.userDefinedMetadata : {}
  const config = isRecord(meta.bertConfig) ? meta.bertConfig : {}
  return {
    folder,
    vocabSize: Number(config.vocab_size),
    numLabels: Number(config.num_labels ?? 2),
    metadata: isRecord(meta.metadata) ? meta.metadata : {},
  }
}

/** The model's vocabulary is the data's: same size (in its configuration, and in its metadata when given). */
export const checkVocabulary = (
  info: ModelInfo,
  manifest: TokensManifest,
  what: string,
  data: string,
): void => {
  const sizes = [info.vocabSize]
  const meta = info.metadata.vocab_size
  if (typeof meta === "number") sizes.push(meta)
  const wrong = sizes.find((n) => n !== manifest.vocab_size)
  if (wrong !== undefined)
    throw new StageInputError(
      `${what}: the model has a vocabulary of ${wrong} tokens, the data (${data}) ${manifest.vocab_size}\n   Tokenize the data with the model's vocabulary (the tokenize stage it was trained on, or \`vocab:\` that stage's tokenizer.json), or use a model trained on this data's tokenizer.`,
    )
}

const list = (xs: ReadonlyArray<string>) => `[${xs.join(", ")}]`

/** The model is a classifier over exactly the data's labels, in the same order; returns the labels. */
export const checkClassifier = (
  info: ModelInfo,
  manifest: TokensManifest,
  what: string,
  data: string,
): ReadonlyArray<string> => {
  const task = info.metadata.task
  if (task === "mlm")
    throw new StageInputError(
      `${what}: this is a masked-LM model (task "mlm"), not a classifier\n   Fine-tune it on labeled data with a \`train\` stage first, and evaluate that stage's out (\${stages.train.outs[0]}).`,
    )
  if (task !== "classification")
    throw new StageInputError(
      `${what}: the model's metadata does not say it is a classifier (task ${JSON.stringify(task ?? null)})\n   Evaluate a model written by a \`train\` stage; rerun that stage if an older version wrote it.`,
    )
  const labels = manifest.labels
  if (labels === null)
    throw new StageInputError(
      `data: ${data} has no labels, so there is nothing to score a classifier against\n   Point \`data\` at a tokenize stage of labeled data (from an ingest with \`label_field\`).`,
    )
  const meta = info.metadata.labels
  const modelLabels = Array.isArray(meta) ? meta.map(String) : undefined
  if (modelLabels === undefined || modelLabels.length !== info.numLabels)
    throw new StageInputError(
      `${what}: the model's metadata does not name the labels of its ${info.numLabels} outputs\n   Evaluate a model written by a \`train\` stage; rerun that stage if an older version wrote it.`,
    )
  if (modelLabels.length !== labels.length || modelLabels.some((l, i) => l !== labels[i]))
    throw new StageInputError(
      `${what}: the model predicts the labels ${list(modelLabels)}, the data (${data}) has ${list(labels)}\n   Evaluate on data with the labels the model was trained on, in the same order (the ingest stage's \`labels\`), or train the model on this data.`,
    )
  return labels
}
