/**
 * A WordPiece vocabulary: token <-> id, where the id is the token's position. Read from and written to
 * BERT's `vocab.txt` (one token per line, the line index is the id).
 */
import * as Either from "effect/Either"
import { TokenizerFileError } from "./errors.js"

/** The special tokens BERT needs, by role. */
export interface SpecialTokens {
  readonly pad: string
  readonly unk: string
  readonly cls: string
  readonly sep: string
  /** optional: only masked-language-model training uses it */
  readonly mask: string
}

/** BERT's special tokens. */
export const BERT_SPECIALS: SpecialTokens = {
  pad: "[PAD]",
  unk: "[UNK]",
  cls: "[CLS]",
  sep: "[SEP]",
  mask: "[MASK]",
}

/** The roles a vocabulary must have a token for (all but `mask`). */
export const REQUIRED_ROLES = ["pad", "unk", "cls", "sep"] as const

/** An immutable token <-> id map; ids run from 0 to `size - 1`. */
export class Vocab {
  private readonly ids: ReadonlyMap<string, number>

  private constructor(private readonly list: ReadonlyArray<string>) {
    this.ids = new Map(list.map((t, i) => [t, i]))
  }

  /** A vocabulary whose ids are the tokens' positions; `undefined` if a token appears twice. */
  static fromTokens(tokens: ReadonlyArray<string>): Vocab | undefined {
    const vocab = new Vocab([...tokens])
    return vocab.ids.size === tokens.length ? vocab : undefined
  }

  /** The number of tokens. */
  get size(): number {
    return this.list.length
  }

  /** The id of `token`, if it is in the vocabulary. */
  id(token: string): number | undefined {
    return this.ids.get(token)
  }

  /** The token with id `id`, if there is one. */
  token(id: number): string | undefined {
    return this.list[id]
  }

  /** Whether `token` is in the vocabulary. */
  has(token: string): boolean {
    return this.ids.has(token)
  }

  /** All tokens in id order. */
  tokens(): ReadonlyArray<string> {
    return this.list
  }
}

const vocabTxtHint = "A vocab.txt has one token per line, and a token's id is its line number counted from 0."

/**
 * Parses a `vocab.txt`. Stricter than Hugging Face's `load_vocab`, which lets a repeated token silently
 * take the later id and keeps blank lines as an empty token: both shift ids under a model's embeddings.
 * A final newline is allowed, and so are CRLF line ends.
 */
export const parseVocabTxt = (text: string, file: string): Either.Either<Vocab, TokenizerFileError> => {
  const lines = text.split("\n")
  if (lines.at(-1) === "") lines.pop()
  if (lines.length === 0)
    return Either.left(new TokenizerFileError({ file, problem: "the file is empty", hint: vocabTxtHint }))
  const first = new Map<string, number>()
  const tokens: string[] = []
  for (const [i, raw] of lines.entries()) {
    const token = raw.endsWith("\r") ? raw.slice(0, -1) : raw
    if (token === "")
      return Either.left(
        new TokenizerFileError({
          file,
          line: i + 1,
          problem: "empty line",
          hint: "Remove the blank line: every line is a token, and the tokens after it would get the wrong ids.",
        }),
      )
    const seen = first.get(token)
    if (seen !== undefined)
      return Either.left(
        new TokenizerFileError({
          file,
          line: i + 1,
          problem: `the token ${JSON.stringify(token)} is already on line ${seen + 1}`,
          hint: "Each token must appear once: remove one of the two lines (and check the model's ids).",
        }),
      )
    first.set(token, i)
    tokens.push(token)
  }
  return Either.right(Vocab.fromTokens(tokens)!)
}

/** Writes `vocab.txt`: one token per line, in id order, with a final newline. */
export const formatVocabTxt = (vocab: Vocab): string => `${vocab.tokens().join("\n")}\n`

/** The first special token `vocab` lacks, if any; the error to report for it. */
export const missingSpecial = (
  vocab: Vocab,
  specials: SpecialTokens,
  file: string,
): TokenizerFileError | undefined => {
  const missing = REQUIRED_ROLES.map((r) => specials[r]).find((t) => !vocab.has(t))
  if (missing === undefined) return undefined
  return new TokenizerFileError({
    file,
    problem: `no ${JSON.stringify(missing)} token`,
    hint: `A BERT vocabulary needs ${REQUIRED_ROLES.map((r) => specials[r]).join(", ")}: add the missing one (they usually come first).`,
  })
}
