/**
 * The BERT tokenizer: Hugging Face `BertTokenizer` (special tokens kept whole, then `BasicTokenizer`, then
 * `WordpieceTokenizer`), with encoding to model inputs and decoding back to text.
 *
 * Why our own code and not a package: npm has no BERT WordPiece tokenizer for Node that is both correct and
 * light. `@huggingface/tokenizers` (pure JS) walks the text by UTF-16 unit when it isolates CJK ideographs,
 * so U+20000 and the rest of CJK Extension B and up are not split (`a\u{20000}a` is one `[UNK]` word), it
 * reads only tokenizer.json and it cannot train; `bert-tokenizer` has no CJK handling, lowercases after
 * stripping accents and walks UTF-16 units too; `@xenova/transformers`/`@huggingface/transformers` pull
 * in ONNX Runtime and sharp and load models from a hub; `kitoken` is a 7 MB WebAssembly build with no
 * trainer. The algorithm is small and fully specified by the reference implementation, so we follow it.
 */
import { type BasicOptions, BasicTokenizer } from "./basic.js"
import {
  type Assembled,
  assemble,
  type BatchEncodeOptions,
  type BatchEncoding,
  type EncodeOptions,
  type Encoding,
  pack,
  pad,
  type SpecialIds,
} from "./encoding.js"
import type { SpecialTokens, Vocab } from "./vocab.js"
import { WordPiece, type WordPieceOptions } from "./wordpiece.js"

/** Everything that defines a BERT tokenizer besides its vocabulary. */
export interface BertConfig {
  readonly basic: BasicOptions
  readonly wordpiece: WordPieceOptions
  readonly specials: SpecialTokens
  /** more tokens of the vocabulary kept whole wherever they occur in the text (tokenizer.json's `added_tokens`) */
  readonly addedTokens?: ReadonlyArray<string>
}

/** How to turn ids back into text. */
export interface DecodeOptions {
  /** leave out the special tokens, `[UNK]` included as in Hugging Face; default false */
  readonly skipSpecialTokens?: boolean
  /** `clean_up_tokenization_spaces`: "a , b ." -> "a, b."; default true, as for BERT */
  readonly cleanUpSpaces?: boolean
}

/** An item of a batch: a text, or a pair of texts (`[CLS] a [SEP] b [SEP]`). */
export type BatchItem = string | readonly [string, string]

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Hugging Face's `clean_up_tokenization`, replacement for replacement. */
const cleanUpTokenization = (s: string): string =>
  s
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re")

// Bounds the run cache, so that a stream of unique strings cannot grow it without end.
const CACHE_LIMIT = 100_000

/** A BERT WordPiece tokenizer over one vocabulary. Immutable apart from internal caches. */
export class BertTokenizer {
  private readonly basic: BasicTokenizer
  private readonly wordpiece: WordPiece
  /** matches the tokens kept whole; the longest first, as Hugging Face's trie does */
  private readonly whole: RegExp | undefined
  private readonly specialIds: SpecialIds
  private readonly allSpecialIds: ReadonlySet<number>
  private readonly chunks = new Map<string, ReadonlyArray<number>>()

  constructor(
    readonly vocab: Vocab,
    readonly config: BertConfig,
  ) {
    const id = (token: string): number => {
      const found = vocab.id(token)
      if (found === undefined) throw new Error(`the vocabulary has no ${token} token`)
      return found
    }
    const { specials } = config
    this.specialIds = { cls: id(specials.cls), sep: id(specials.sep), pad: id(specials.pad) }
    const specialTokens = [specials.pad, specials.unk, specials.cls, specials.sep, specials.mask].filter(
      (t) => vocab.has(t),
    )
    this.allSpecialIds = new Set(specialTokens.map(id))
    for (const t of config.addedTokens ?? []) id(t)
    const whole = [...new Set([...specialTokens, ...(config.addedTokens ?? [])])].filter((t) => t !== "")
    whole.sort((x, y) => y.length - x.length || (x < y ? -1 : x > y ? 1 : 0))
    this.whole = whole.length === 0 ? undefined : new RegExp(whole.map(escapeRegExp).join("|"), "g")
    this.basic = new BasicTokenizer(config.basic, new Set(whole))
    this.wordpiece = new WordPiece(vocab, config.wordpiece)
  }

  /** The WordPiece tokens of `text`, without `[CLS]`/`[SEP]`. */
  tokenize(text: string): string[] {
    return this.textIds(text).map((i) => this.vocab.token(i)!)
  }

  /** The ids of the WordPiece tokens of `text`, without `[CLS]`/`[SEP]`. */
  textIds(text: string): number[] {
    const out: number[] = []
    const words = (segment: string) =>
      this.basic.forEachChunk(segment, (chunk) => {
        for (const i of this.chunkIds(chunk)) out.push(i)
      })
    let last = 0
    if (this.whole !== undefined) {
      for (const m of text.matchAll(this.whole)) {
        words(text.slice(last, m.index))
        out.push(this.vocab.id(m[0])!)
        last = m.index + m[0].length
      }
    }
    words(last === 0 ? text : text.slice(last))
    return out
  }

  /** `[CLS] text [SEP]` as model inputs. */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    return this.finish(assemble(this.textIds(text), undefined, this.specialIds, options), options)
  }

  /** `[CLS] first [SEP] second [SEP]` as model inputs (token type 1 for the second segment). */
  encodePair(first: string, second: string, options: EncodeOptions = {}): Encoding {
    const seq = assemble(this.textIds(first), this.textIds(second), this.specialIds, options)
    return this.finish(seq, options)
  }

  /** Many texts (or pairs) at once, padded into row-major `Int32Array`s. */
  encodeBatch(items: ReadonlyArray<BatchItem>, options: BatchEncodeOptions = {}): BatchEncoding {
    const seqs: Assembled[] = items.map((item) =>
      typeof item === "string"
        ? assemble(this.textIds(item), undefined, this.specialIds, options)
        : assemble(this.textIds(item[0]), this.textIds(item[1]), this.specialIds, options),
    )
    return pack(seqs, this.specialIds.pad, options)
  }

  /** Text from ids: Hugging Face's `decode` (pieces rejoined, spaces before punctuation cleaned up). */
  decode(ids: Iterable<number>, options: DecodeOptions = {}): string {
    const unk = this.config.specials.unk
    const tokens: string[] = []
    for (const i of ids) {
      if (options.skipSpecialTokens === true && this.allSpecialIds.has(i)) continue
      tokens.push(this.vocab.token(i) ?? unk)
    }
    const text = tokens.join(" ").replaceAll(` ${this.config.wordpiece.prefix}`, "").trim()
    return options.cleanUpSpaces === false ? text : cleanUpTokenization(text)
  }

  /** The ids of one whitespace-free run of text, cached: text repeats its runs as it repeats its words. */
  private chunkIds(chunk: string): ReadonlyArray<number> {
    let ids = this.chunks.get(chunk)
    if (ids === undefined) {
      const found: number[] = []
      this.basic.forEachToken(chunk, (word) => {
        for (const i of this.wordpiece.pieces(word)) found.push(i)
      })
      ids = found
      if (this.chunks.size >= CACHE_LIMIT) this.chunks.clear()
      this.chunks.set(chunk, ids)
    }
    return ids
  }

  private finish(seq: Assembled, options: EncodeOptions): Encoding {
    const { ids, typeIds, attentionMask } = pad(seq, this.specialIds.pad, options)
    const tokens = ids.map((i) => this.vocab.token(i)!)
    return { ids, tokens, attentionMask, tokenTypeIds: typeIds, truncated: seq.truncated }
  }
}
