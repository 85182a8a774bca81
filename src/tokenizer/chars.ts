/**
 * Character classes of BERT's basic tokenizer, exactly as Hugging Face's `BasicTokenizer` defines them
 * (`_is_control`, `_is_whitespace`, `_is_punctuation`, `_is_chinese_char`), looked up by code point.
 *
 * The classes come from Unicode general categories through `\p{…}` regexes, which are slow to run per
 * character over megabytes of text; so the Basic Multilingual Plane is classified once into a 64 KiB table
 * on first use, and the rare astral code points (CJK Extension B and up, emoji) go through a small cache.
 */

/** Removed by text cleaning: NUL, U+FFFD and every category C* character except tab, newline, return. */
export const REMOVED = 1
/** Separates words: Unicode White_Space (tab, newline, space, NBSP, U+3000, line separator, …). */
export const WHITESPACE = 2
/** A word of its own: BERT's `_is_punctuation` (ASCII ranges 33–47, 58–64, 91–96, 123–126, or category P*). */
export const PUNCTUATION = 4
/** A word of its own when `handleChineseChars`: a CJK ideograph in one of BERT's ranges. */
export const CJK = 8

const OTHER = /^\p{C}$/u
const PUNCT = /^\p{P}$/u
// Unicode White_Space. Python's `str.split` (which BERT splits with) also splits on U+001C–U+001F, and
// Rust's `char::is_whitespace` (the fast tokenizer) does not; both remove them as controls first anyway.
const SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u

/** BERT's `_is_chinese_char` ranges, verbatim: CJK Unified Ideographs and their extensions A–E, and the compatibility blocks. */
export const isCjk = (cp: number): boolean =>
  (cp >= 0x4e00 && cp <= 0x9fff) ||
  (cp >= 0x3400 && cp <= 0x4dbf) ||
  (cp >= 0x20000 && cp <= 0x2a6df) ||
  (cp >= 0x2a700 && cp <= 0x2b73f) ||
  (cp >= 0x2b740 && cp <= 0x2b81f) ||
  (cp >= 0x2b820 && cp <= 0x2ceaf) ||
  (cp >= 0xf900 && cp <= 0xfaff) ||
  (cp >= 0x2f800 && cp <= 0x2fa1f)

const isAsciiPunctuation = (cp: number): boolean =>
  (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)

const classify = (cp: number): number => {
  const ch = String.fromCodePoint(cp)
  let flags = 0
  // Tab, newline and return are category Cc but BERT counts them as whitespace, not controls.
  if (cp === 0 || cp === 0xfffd || (cp !== 9 && cp !== 10 && cp !== 13 && OTHER.test(ch))) flags |= REMOVED
  if (SPACE.test(ch)) flags |= WHITESPACE
  if (isAsciiPunctuation(cp) || PUNCT.test(ch)) flags |= PUNCTUATION
  if (isCjk(cp)) flags |= CJK
  return flags
}

let bmp: Uint8Array | undefined
const astral = new Map<number, number>()

const bmpTable = (): Uint8Array => {
  if (bmp === undefined) {
    bmp = new Uint8Array(0x10000)
    // Lone surrogates are category Cs: removed, as Python removes them.
    for (let cp = 0; cp < 0x10000; cp++) bmp[cp] = classify(cp)
  }
  return bmp
}

/** The class flags of every code point below U+10000, by code point (built on first use). */
export const bmpFlags = (): Uint8Array => bmpTable()

/** The class flags (`REMOVED | WHITESPACE | PUNCTUATION | CJK`) of one code point. */
export const charFlags = (cp: number): number => {
  if (cp < 0x10000) return bmpTable()[cp]!
  let flags = astral.get(cp)
  if (flags === undefined) {
    flags = classify(cp)
    astral.set(cp, flags)
  }
  return flags
}
