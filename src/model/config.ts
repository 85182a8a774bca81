/**
 * The encoder's configuration. The field names are Hugging Face `BertConfig`'s, so a checkpoint's
 * `config.json` reads straight in and ours can be written back out for PyTorch to read.
 */
import { readFile } from "node:fs/promises"
import { ModelConfigInvalid, ModelFileInvalid } from "./errors.js"

/** The activation in the feed-forward block and the MLM transform, by Hugging Face's names. */
export type HiddenAct = "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu"

/** A BERT encoder's sizes and regularisation, as in Hugging Face's `BertConfig`. */
export interface BertConfig {
  readonly vocab_size: number
  readonly hidden_size: number
  readonly num_hidden_layers: number
  readonly num_attention_heads: number
  readonly intermediate_size: number
  readonly hidden_act: HiddenAct
  readonly max_position_embeddings: number
  readonly type_vocab_size: number
  readonly layer_norm_eps: number
  readonly hidden_dropout_prob: number
  readonly attention_probs_dropout_prob: number
  /** the std of the normal the weights start from */
  readonly initializer_range: number
  /** the classification head's output size */
  readonly num_labels: number
  readonly pad_token_id: number
  /**
   * What the classification head reads: the first token's hidden state (`cls`, BERT's pooler; the default)
   * or the mean over the real tokens (`mean`, as Sentence-BERT pools). Ours, not Transformers': a checkpoint
   * saved with `mean` loads in PyTorch with BERT's first-token pooler.
   */
  readonly classifier_pooling?: "cls" | "mean"
}

/** Hugging Face's `BertConfig()` defaults (bert-base-uncased), with two labels. */
export const BERT_BASE: BertConfig = {
  vocab_size: 30522,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: "gelu",
  max_position_embeddings: 512,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
  initializer_range: 0.02,
  num_labels: 2,
  pad_token_id: 0,
}

const HIDDEN_ACTS: ReadonlyArray<HiddenAct> = ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu"]

const INT_FIELDS = [
  "vocab_size",
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "intermediate_size",
  "max_position_embeddings",
  "type_vocab_size",
  "num_labels",
] as const

/** The problems with a configuration; empty when it is usable. */
export const configProblems = (c: BertConfig): Array<string> => {
  const problems: Array<string> = []
  for (const f of INT_FIELDS) {
    if (!Number.isInteger(c[f]) || c[f] < 1) problems.push(`${f} must be a positive integer, not ${c[f]}`)
  }
  if (Number.isInteger(c.hidden_size) && Number.isInteger(c.num_attention_heads)) {
    if (c.hidden_size % c.num_attention_heads !== 0) {
      problems.push(
        `hidden_size (${c.hidden_size}) must be a multiple of num_attention_heads (${c.num_attention_heads})`,
      )
    }
  }
  for (const f of ["hidden_dropout_prob", "attention_probs_dropout_prob"] as const) {
    if (!(c[f] >= 0 && c[f] < 1)) problems.push(`${f} must be in [0, 1), not ${c[f]}`)
  }
  if (!(c.layer_norm_eps > 0)) problems.push(`layer_norm_eps must be positive, not ${c.layer_norm_eps}`)
  if (!(c.initializer_range >= 0)) problems.push(`initializer_range must be >= 0, not ${c.initializer_range}`)
  if (!HIDDEN_ACTS.includes(c.hidden_act)) {
    problems.push(`hidden_act must be one of ${HIDDEN_ACTS.join(", ")}, not ${JSON.stringify(c.hidden_act)}`)
  }
  if (!Number.isInteger(c.pad_token_id) || c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size) {
    problems.push(`pad_token_id must be a token id below vocab_size, not ${c.pad_token_id}`)
  }
  return problems
}

const invalid = (source: string, problems: ReadonlyArray<string>): ModelConfigInvalid =>
  new ModelConfigInvalid({
    source,
    problems,
    message: `${source}: not a usable BERT configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
  })

/**
 * A complete configuration: `BERT_BASE` under the given fields. Throws `ModelConfigInvalid` when the
 * result cannot run.
 */
export const bertConfig = (fields: Partial<BertConfig>, source = "(in code)"): BertConfig => {
  const c: BertConfig = { ...BERT_BASE, ...fields }
  const problems = configProblems(c)
  if (problems.length > 0) throw invalid(source, problems)
  return c
}

const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x)

/**
 * Read a Hugging Face `config.json` object. Fields we do not use (`architectures`, `id2label`'s names,
 * `transformers_version`, ...) are ignored; ones that change the computation and that we do not
 * implement are refused rather than silently run differently.
 */
export const configFromHf = (json: unknown, source: string): BertConfig => {
  if (!isRecord(json)) throw invalid(source, ["the configuration must be a JSON object"])
  const problems: Array<string> = []
  const modelType = json.model_type
  if (modelType !== undefined && modelType !== "bert") {
    problems.push(`model_type is ${JSON.stringify(modelType)}; only "bert" checkpoints are supported`)
  }
  const posType = json.position_embedding_type
  if (posType !== undefined && posType !== "absolute") {
    problems.push(`position_embedding_type ${JSON.stringify(posType)} is not supported; only "absolute" is`)
  }
  const fields: Record<string, unknown> = {}
  for (const key of Object.keys(BERT_BASE) as Array<keyof BertConfig>) {
    const v = json[key]
    if (v === undefined || v === null) continue
    if (key === "hidden_act" ? typeof v !== "string" : typeof v !== "number") {
      problems.push(
        `${key} must be a ${key === "hidden_act" ? "string" : "number"}, not ${JSON.stringify(v)}`,
      )
      continue
    }
    fields[key] = v
  }
  const pooling = json.classifier_pooling
  if (pooling !== undefined && pooling !== "cls" && pooling !== "mean")
    problems.push(`classifier_pooling must be "cls" or "mean", not ${JSON.stringify(pooling)}`)
  else if (pooling !== undefined) fields.classifier_pooling = pooling
  // Transformers writes `id2label` and derives num_labels from it.
  if (fields.num_labels === undefined && isRecord(json.id2label)) {
    fields.num_labels = Object.keys(json.id2label).length
  }
  if (problems.length > 0) throw invalid(source, problems)
  return bertConfig(fields as Partial<BertConfig>, source)
}

/** Read and check a Hugging Face `config.json` file. */
export const readHfConfig = async (path: string): Promise<BertConfig> => {
  let text: string
  try {
    text = await readFile(path, "utf8")
  } catch (e) {
    throw new ModelFileInvalid({ path, message: `cannot read ${path}: ${(e as Error).message}` })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    throw new ModelFileInvalid({ path, message: `${path} is not valid JSON: ${(e as Error).message}` })
  }
  return configFromHf(json, path)
}

/** The `config.json` object Transformers' `BertForPreTraining`/`BertForSequenceClassification` reads. */
export const configToHf = (c: BertConfig): Record<string, unknown> => ({
  architectures: ["BertForMaskedLM"],
  model_type: "bert",
  position_embedding_type: "absolute",
  ...c,
  id2label: Object.fromEntries(Array.from({ length: c.num_labels }, (_, i) => [String(i), `LABEL_${i}`])),
  label2id: Object.fromEntries(Array.from({ length: c.num_labels }, (_, i) => [`LABEL_${i}`, i])),
})
