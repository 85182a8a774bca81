/**
 * `with:` of a tokenize stage, typed, with what its schema cannot express checked (both `vocab` and
 * `train_vocab`). Light, so the pipeline loader runs the same check before anything runs (the kind's
 * `check` in stages/registry.ts).
 */
import { StageInputError } from "./api.js"

/** `with.train_vocab`. */
export interface TrainVocabOptions {
  readonly vocabSize: number
  readonly minFrequency: number
  readonly limitAlphabet: number | undefined
  /** folders (an ingest out: its train.jsonl) and files (.jsonl with "text", or plain text, a line each) */
  readonly corpus: ReadonlyArray<string>
}

/** `with:` of a tokenize stage, typed. */
export interface TokenizeOptions {
  readonly data: string
  readonly vocab: string | undefined
  readonly trainVocab: TrainVocabOptions | undefined
  readonly lowercase: boolean
  readonly maxLength: number
  readonly truncation: boolean
  readonly padding: "max_length" | "longest"
}

/** Reads `with:` (already checked against the schema, defaults filled in). */
export const tokenizeOptions = (args: Readonly<Record<string, unknown>>): TokenizeOptions => {
  const data = String(args.data).replace(/\/+$/, "")
  const train = args.train_vocab as Record<string, unknown> | undefined
  if (train !== undefined && args.vocab !== undefined)
    throw new StageInputError(
      'with: both "vocab" and "train_vocab" are set\n   Use a vocabulary file (`vocab`) or train one (`train_vocab`): remove one of them.',
    )
  return {
    data,
    vocab: typeof args.vocab === "string" ? args.vocab : undefined,
    trainVocab:
      train === undefined
        ? undefined
        : {
            vocabSize: Number(train.vocab_size ?? 8000),
            minFrequency: Number(train.min_frequency ?? 2),
            limitAlphabet: typeof train.limit_alphabet === "number" ? train.limit_alphabet : undefined,
            corpus: Array.isArray(train.corpus) ? train.corpus.map(String) : [data],
          },
    lowercase: args.lowercase !== false,
    maxLength: typeof args.max_length === "number" ? args.max_length : 128,
    truncation: args.truncation !== false,
    padding: args.padding === "longest" ? "longest" : "max_length",
  }
}
