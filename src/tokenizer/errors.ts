/** The tokenizer's failures: a vocabulary or tokenizer file that cannot be used. */
import * as Data from "effect/Data"

/** A `vocab.txt` or `tokenizer.json` that cannot be read or is not a usable BERT WordPiece tokenizer. */
export class TokenizerFileError extends Data.TaggedError("TokenizerFileError")<{
  /** the file as the caller named it */
  readonly file: string
  /** 1-based line of the problem, where it has one */
  readonly line?: number
  /** 1-based column of the problem, where it has one */
  readonly column?: number
  /** what is wrong, without a final full stop */
  readonly problem: string
  /** one sentence: what to do */
  readonly hint: string
}> {
  /** `vocab.txt:7: empty line. <hint>`: where, what, what to do. */
  override get message(): string {
    const where =
      this.line === undefined
        ? this.file
        : `${this.file}:${this.line}${this.column === undefined ? "" : `:${this.column}`}`
    return `${where}: ${this.problem}. ${this.hint}`
  }
}
