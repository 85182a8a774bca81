/**
 * WordPiece: Hugging Face `WordpieceTokenizer`'s greedy longest-match-first split of one basic token into
 * vocabulary pieces, the pieces after the first carrying the continuation prefix (`##`). A word with a
 * part no piece matches, or longer than `maxInputCharsPerWord` code points, becomes the unknown token whole.
 */
import type { Vocab } from "./vocab.js"

/** The WordPiece model's settings (`model.*` in tokenizer.json). */
export interface WordPieceOptions {
  /** the token for a word that cannot be split into pieces */
  readonly unkToken: string
  /** marks a piece that continues a word (`continuing_subword_prefix`) */
  readonly prefix: string
  /** longer words (in code points) are unknown without trying (`max_input_chars_per_word`) */
  readonly maxInputCharsPerWord: number
}

/** BERT's WordPiece settings. */
export const BERT_WORDPIECE: WordPieceOptions = { unkToken: "[UNK]", prefix: "##", maxInputCharsPerWord: 100 }

// Natural text repeats its words (Zipf), so splitting each distinct word once pays; the bound keeps memory
// flat on a stream of unique strings.
const CACHE_LIMIT = 100_000

const hasSurrogate = /[\ud800-\udfff]/

/** Splits basic tokens into vocabulary ids. */
export class WordPiece {
  private readonly unkId: number
  /** no piece is longer (in code points, prefix included), so longer candidates need not be looked up */
  private readonly longest: number
  private readonly cache = new Map<string, ReadonlyArray<number>>()

  constructor(
    readonly vocab: Vocab,
    readonly options: WordPieceOptions,
  ) {
    const unk = vocab.id(options.unkToken)
    if (unk === undefined) throw new Error(`the vocabulary has no unknown token ${options.unkToken}`)
    this.unkId = unk
    let longest = 0
    for (const t of vocab.tokens()) {
      const n = hasSurrogate.test(t) ? [...t].length : t.length
      if (n > longest) longest = n
    }
    this.longest = longest
  }

  /** The ids of the pieces of one basic token (shared: do not modify). */
  pieces(word: string): ReadonlyArray<number> {
    let ids = this.cache.get(word)
    if (ids === undefined) {
      ids = this.split(word)
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear()
      this.cache.set(word, ids)
    }
    return ids
  }

  private split(word: string): ReadonlyArray<number> {
    // Offsets of the code points, so that a surrogate pair is one character, as in Python.
    let offsets: number[] | undefined
    if (hasSurrogate.test(word)) {
      offsets = []
      for (let i = 0; i < word.length; ) {
        offsets.push(i)
        const c = word.charCodeAt(i)
        const next = word.charCodeAt(i + 1) // NaN past the end
        i += c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff ? 2 : 1
      }
      offsets.push(word.length)
    }
    const chars = offsets === undefined ? word.length : offsets.length - 1
    if (chars > this.options.maxInputCharsPerWord) return [this.unkId]
    const at = (i: number) => (offsets === undefined ? i : offsets[i]!)
    const { prefix } = this.options
    const out: number[] = []
    let start = 0
    while (start < chars) {
      let end = Math.min(chars, start + this.longest)
      let found: number | undefined
      while (start < end) {
        const piece = word.slice(at(start), at(end))
        found = this.vocab.id(start > 0 ? prefix + piece : piece)
        if (found !== undefined) break
        end--
      }
      if (found === undefined) return [this.unkId]
      out.push(found)
      start = end
    }
    return out
  }
}
