/**
 * The registry of built-in stage kinds. A kind's definition is light (no heavy imports): the spec loader
 * reads it to validate `with:`, derive the stage's outs and deps, and put the kind's version into the
 * fingerprint. The implementation lives in a separate module that only the stage runner loads.
 */

import evaluateSchema from "../schemas/stages/evaluate.schema.json" with { type: "json" }
import forgettingCheckSchema from "../schemas/stages/forgetting-check.schema.json" with { type: "json" }
import freezeSchema from "../schemas/stages/freeze.schema.json" with { type: "json" }
import ingestSchema from "../schemas/stages/ingest.schema.json" with { type: "json" }
import pretrainSchema from "../schemas/stages/pretrain.schema.json" with { type: "json" }
import tokenizeSchema from "../schemas/stages/tokenize.schema.json" with { type: "json" }
import trainSchema from "../schemas/stages/train.schema.json" with { type: "json" }
import wordCountSchema from "../schemas/stages/word-count.schema.json" with { type: "json" }
import { StageInputError } from "./api.js"
import { builtinDatasets, datasetDep } from "./datasets.js"
import { evaluateOptions } from "./evaluate-options.js"
import { freezeOptions } from "./freeze-options.js"
import { ingestOptions } from "./ingest-options.js"
import { pretrainOptions } from "./pretrain-options.js"
import { tokenizeOptions } from "./tokenize-options.js"
import { trainOptions } from "./train-options.js"

/** What the loader and the fingerprint need to know of a built-in stage kind. */
export interface KindDefinition {
  readonly kind: string
  /** bump when the kind's results change: it is part of every fingerprint of a stage of this kind */
  readonly version: string
  readonly description: string
  /** JSON Schema of the stage's `with:` */
  readonly schema: object
  /** the outs it writes, project-relative, given its `with:` and its out folder */
  readonly outs: (args: Readonly<Record<string, unknown>>, outDir: string) => ReadonlyArray<string>
  /** the paths it reads, as written in `with:` */
  readonly deps: (args: Readonly<Record<string, unknown>>) => ReadonlyArray<string>
  /** computes with TensorFlow.js: the compute identity joins its fingerprint (src/compute/identity.ts) */
  readonly compute?: boolean
  /** rules of `with:` its schema cannot express; each problem is reported before anything runs (exit 2) */
  readonly check?: (args: Readonly<Record<string, unknown>>) => ReadonlyArray<KindProblem>
}

/** A problem with a stage's `with:`: what is wrong and one sentence on what to do. */
export interface KindProblem {
  readonly message: string
  readonly hint: string
}

/**
 * A `check` from a kind's own options reader: the rules live once, where the kind reads its `with:`, and
 * the loader reports what that reader would reject at run time.
 */
const checkedBy =
  (read: (args: Readonly<Record<string, unknown>>) => unknown) =>
  (args: Readonly<Record<string, unknown>>): ReadonlyArray<KindProblem> => {
    try {
      read(args)
      return []
    } catch (e) {
      if (!(e instanceof StageInputError)) throw e
      const [message = e.message, hint = ""] = e.message.replace(/^with: /, "").split("\n   ")
      return [{ message, hint }]
    }
  }

/** The default folder of a built-in stage's outs, unless `with.out_dir` says otherwise. */
export const defaultOutDir = (pipelineName: string, stageName: string): string =>
  `outputs/${pipelineName}/${stageName}`

const wordCount: KindDefinition = {
  kind: "word-count",
  version: "1",
  description: "Counts lines, words and the most frequent words of a text file or of every file in a folder.",
  schema: wordCountSchema,
  outs: (_args, outDir) => [`${outDir}/counts.json`],
  deps: (args) => [String(args.input)],
}

const names = (v: unknown): string[] =>
  v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]

const ingest: KindDefinition = {
  kind: "ingest",
  version: "1",
  description:
    "Reads a dataset (JSON Lines, CSV, text, a folder per label, or a built-in dataset), drops bad rows and duplicates, and splits it into train, validation and test by a hash of each text.",
  schema: ingestSchema,
  outs: (_args, outDir) => [outDir],
  // a built-in dataset's data folder is a dep like any file: its content digest is in the fingerprint
  deps: (args) =>
    typeof args.source === "string"
      ? [args.source]
      : names(args.dataset).flatMap((name) => {
          const dataset = builtinDatasets.get(name)
          return dataset === undefined ? [] : [datasetDep(dataset)]
        }),
  check: checkedBy(ingestOptions),
}

const tokenize: KindDefinition = {
  kind: "tokenize",
  version: "1",
  description:
    "Turns an ingest stage's splits into BERT token ids (a compact binary artifact), with a given or a trained WordPiece vocabulary.",
  schema: tokenizeSchema,
  outs: (_args, outDir) => [outDir],
  deps: (args) => {
    const train = args.train_vocab as { corpus?: unknown } | undefined
    const paths = [String(args.data), ...names(args.vocab), ...names(train?.corpus)]
    return [...new Set(paths)]
  },
  check: checkedBy(tokenizeOptions),
}

const pretrain: KindDefinition = {
  kind: "pretrain",
  compute: true,
  version: "2",
  description:
    "Masked-LM pretraining of a BERT-style encoder on a tokenized general corpus, or a local Hugging Face checkpoint loaded (`from`) and optionally trained further.",
  schema: pretrainSchema,
  outs: (_args, outDir) => [outDir],
  deps: (args) => [String(args.data), ...names(args.from)],
  check: checkedBy(pretrainOptions),
}

const freeze: KindDefinition = {
  kind: "freeze",
  version: "1",
  description:
    "Chooses which parameters a train stage trains (top or bottom layers, embeddings, name patterns) and reports trainable against total parameter counts.",
  schema: freezeSchema,
  outs: (_args, outDir) => [outDir],
  deps: (args) => [String(args.model)],
  check: checkedBy(freezeOptions),
}

const train: KindDefinition = {
  kind: "train",
  compute: true,
  version: "2",
  description:
    "Fine-tunes a pretrained encoder with a classification head: AdamW, learning-rate schedule with warmup, clipping, seeded shuffling, early stopping, per-epoch checkpoints with resume, L2-SP and replay.",
  schema: trainSchema,
  outs: (_args, outDir) => [outDir],
  deps: (args) => {
    const replay = args.replay as { data?: unknown } | undefined
    return [
      ...new Set([String(args.model), String(args.data), ...names(args.freeze), ...names(replay?.data)]),
    ]
  },
  check: checkedBy(trainOptions),
}

const evaluate: KindDefinition = {
  kind: "evaluate",
  compute: true,
  version: "2",
  description:
    "Scores classification models on the same split (accuracy, macro precision/recall/F1, confusion matrix, loss) beside a bag-of-words logistic-regression baseline, and lists the examples where they disagree.",
  schema: evaluateSchema,
  outs: (_args, outDir) => [outDir],
  deps: (args) => [
    ...new Set([
      String(args.data),
      ...Object.values((args.models ?? {}) as Record<string, unknown>).map(String),
    ]),
  ],
  check: checkedBy(evaluateOptions),
}

const forgettingCheck: KindDefinition = {
  kind: "forgetting-check",
  compute: true,
  version: "2",
  description:
    "Scores a model before and after fine-tuning on the same masked general text (masked-LM loss, perplexity, accuracy) and fails when the chosen measure dropped by more than max_drop.",
  schema: forgettingCheckSchema,
  outs: (_args, outDir) => [outDir],
  deps: (args) => [...new Set([String(args.before), String(args.after), String(args.data)])],
}

/** Every built-in kind, by name. */
export const kinds: ReadonlyMap<string, KindDefinition> = new Map(
  [wordCount, ingest, tokenize, pretrain, freeze, train, evaluate, forgettingCheck].map((k) => [k.kind, k]),
)
