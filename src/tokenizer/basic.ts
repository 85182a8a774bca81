/**
 * BERT's basic tokenization: Hugging Face `BertTokenizer`'s `BasicTokenizer`, step for step.
 *
 *   clean (drop NUL, U+FFFD, controls; whitespace -> space) -> one word per CJK ideograph -> NFC ->
 *   split on whitespace -> per word: lowercase, strip accents (NFD, drop Mn) -> split off punctuation
 *
 * It walks the text by code point, never by UTF-16 unit, so an ideograph outside the Basic Multilingual
 * Plane (U+20000, a surrogate pair) is one character, as Python sees it. Lowercasing is per code point, as
 * both Hugging Face tokenizers do it (`BertTokenizer.tokenize` lowercases one character at a time before
 * its `BasicTokenizer` runs, the fast `BertNormalizer` maps each char): "ΟΔΟΣ" becomes "οδοσ", not
 * the "οδος" with a final sigma of JavaScript's `toLowerCase` (or of `BasicTokenizer` called on its own).
 * Words made only of code units below U+00C0 skip normalization: NFC and NFD leave them unchanged.
 *
 * Checked once (outside the test suite) against a line-by-line Python port of `BertTokenizer` (Python's own `unicodedata`) on 40,000
 * random strings of ASCII, Latin, Greek, Cyrillic, Arabic, combining marks, controls, Unicode spaces and
 * punctuation, kana, Hangul, CJK (BMP and Extension B), compatibility ideographs and emoji: identical.
 */
import { bmpFlags, CJK, charFlags, PUNCTUATION, REMOVED, WHITESPACE } from "./chars.js"

/** How BERT normalizes text: the `BasicTokenizer` arguments, or a `BertNormalizer`'s flags in tokenizer.json. */
export interface BasicOptions {
  /** `do_lower_case`: lowercase each word (uncased models) */
  readonly lowercase: boolean
  /** `strip_accents`: NFD and drop nonspacing marks; left out, it follows `lowercase`, as in BERT */
  readonly stripAccents?: boolean | undefined
  /** `tokenize_chinese_chars`: make every CJK ideograph a word of its own */
  readonly handleChineseChars: boolean
  /** `clean_text`: drop NUL, U+FFFD and control characters (the slow `BertTokenizer` always does) */
  readonly cleanText: boolean
}

/** The options of `bert-base-uncased`. */
export const UNCASED: BasicOptions = { lowercase: true, handleChineseChars: true, cleanText: true }

/** The options of `bert-base-cased`. */
export const CASED: BasicOptions = { lowercase: false, handleChineseChars: true, cleanText: true }

const SIGMA = "\u03a3"
const MARKS = /\p{Mn}/gu

/** Lowercase one code point at a time: JavaScript's whole-string `toLowerCase` applies Final_Sigma. */
const lowercaseEach = (word: string): string => {
  if (!word.includes(SIGMA)) return word.toLowerCase()
  let out = ""
  for (const ch of word) out += ch.toLowerCase()
  return out
}

const stripAccents = (word: string): string => word.normalize("NFD").replace(MARKS, "")

/** Splits text into BERT's basic tokens (words and punctuation marks), before WordPiece. */
export class BasicTokenizer {
  private readonly lowercase: boolean
  private readonly strip: boolean
  private readonly chinese: boolean
  private readonly clean: boolean

  constructor(
    options: BasicOptions,
    /** words kept exactly as they are: not lowercased, not split on punctuation (BERT's `never_split`) */
    private readonly neverSplit: ReadonlySet<string> = new Set(),
  ) {
    this.lowercase = options.lowercase
    this.strip = options.stripAccents ?? options.lowercase
    this.chinese = options.handleChineseChars
    this.clean = options.cleanText
  }

  /** The basic tokens of `text`, in order. */
  tokenize(text: string): string[] {
    const out: string[] = []
    this.forEachToken(text, (t) => out.push(t))
    return out
  }

  /** Calls `emit` with each basic token of `text`, in order, without collecting them (for word counting). */
  forEachToken(text: string, emit: (token: string) => void): void {
    const table = bmpFlags()
    const n = text.length
    // The current word is `pending + text.slice(segment, i)`: a removed character splits it into segments.
    let inWord = false
    let pending = ""
    let segment = 0
    // What the word may need: `high`, a code unit >= U+00C0 (NFC, NFD, full Unicode casing, and its
    // punctuation rechecked after them); `punct`, a punctuation mark to split off.
    let high = false
    let punct = false
    for (let i = 0; i <= n; ) {
      let flags = WHITESPACE // the end of the text ends the last word
      let len = 1
      let cp = 0
      if (i < n) {
        cp = text.charCodeAt(i)
        if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
          const lo = text.charCodeAt(i + 1)
          if (lo >= 0xdc00 && lo <= 0xdfff) {
            cp = (cp - 0xd800) * 0x400 + (lo - 0xdc00) + 0x10000
            len = 2
          }
        }
        flags = cp < 0x10000 ? table[cp]! : charFlags(cp)
      }
      if (this.clean && flags & REMOVED) {
        if (inWord) {
          pending += text.slice(segment, i)
          segment = i + len
        }
      } else if (flags & WHITESPACE || (this.chinese && flags & CJK)) {
        if (inWord) {
          inWord = false
          const word = pending + text.slice(segment, i)
          pending = ""
          if (word !== "") this.finishWord(word, high, punct, emit)
        }
        // NFC maps the compatibility ideographs (U+F900–U+FAFF, U+2F800–U+2FA1F) to unified ones.
        if (!(flags & WHITESPACE)) this.finishWord(text.slice(i, i + len), true, false, emit)
      } else {
        if (!inWord) {
          inWord = true
          segment = i
          high = false
          punct = false
        }
        if (cp >= 0xc0) high = true
        if (flags & PUNCTUATION) punct = true
      }
      i += len
    }
  }

  /**
   * Calls `emit` with each run of text between separating whitespace, raw: basic-tokenizing the runs one
   * by one gives the tokens of the whole text. Counting runs first and tokenizing each distinct run once
   * is how `WordCounter` gets through a corpus at a multiple of the speed.
   */
  forEachChunk(text: string, emit: (chunk: string) => void): void {
    const table = bmpFlags()
    const n = text.length
    let start = -1
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i)
      // Whitespace is all in the BMP; a surrogate is never whitespace, so units can be tested one by one.
      const flags = table[c]!
      // Whitespace that cleaning removes (vertical tab, form feed, U+0085) joins, not separates.
      if (flags & WHITESPACE && !(this.clean && flags & REMOVED)) {
        if (start >= 0) emit(text.slice(start, i))
        start = -1
      } else if (start < 0) start = i
    }
    if (start >= 0) emit(text.slice(start))
  }

  private finishWord(raw: string, high: boolean, punct: boolean, emit: (token: string) => void): void {
    let word = high ? raw.normalize("NFC") : raw
    if (this.neverSplit.size > 0 && this.neverSplit.has(word)) {
      emit(word)
      return
    }
    if (this.lowercase) word = high ? lowercaseEach(word) : word.toLowerCase()
    if (this.strip && high) word = stripAccents(word)
    if (high || punct) splitOnPunctuation(word, emit)
    else emit(word)
  }
}

/** BERT's `_run_split_on_punc`: every punctuation mark becomes a token of its own. */
const splitOnPunctuation = (word: string, emit: (token: string) => void): void => {
  const n = word.length
  let start = 0
  for (let i = 0; i < n; ) {
    let cp = word.charCodeAt(i)
    let len = 1
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
      const lo = word.charCodeAt(i + 1)
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = (cp - 0xd800) * 0x400 + (lo - 0xdc00) + 0x10000
        len = 2
      }
    }
    if (charFlags(cp) & PUNCTUATION) {
      if (start < i) emit(word.slice(start, i))
      emit(word.slice(i, i + len))
      start = i + len
    }
    i += len
  }
  if (start === 0) {
    if (n > 0) emit(word)
  } else if (start < n) emit(word.slice(start))
}
