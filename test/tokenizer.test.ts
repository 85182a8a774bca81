// Golden tests of BERT tokenization against test/fixtures/tokenizer/vocab.txt, a 35-token hand-written
// vocabulary (line n is id n - 1). Every expected value below is derived by hand from Hugging Face's
// BertTokenizer algorithm (BasicTokenizer + WordpieceTokenizer); no reference implementation generated them.
import { readFileSync } from "node:fs"
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import {
  BasicTokenizer,
  type BertTokenizer,
  CASED,
  isCjk,
  tokenizerFromVocabTxt,
  UNCASED,
} from "../src/tokenizer/index.js"

const VOCAB = "test/fixtures/tokenizer/vocab.txt"
const load = (basic = UNCASED): BertTokenizer =>
  Either.getOrThrow(tokenizerFromVocabTxt(readFileSync(VOCAB, "utf8"), VOCAB, basic))
const bert = load()

describe("BasicTokenizer", () => {
  const basic = new BasicTokenizer(UNCASED)

  it("lowercases, strips accents and splits off punctuation", () => {
    expect(basic.tokenize("Héllo, WORLD! naïve Café")).toEqual(["hello", ",", "world", "!", "naive", "cafe"])
    expect(basic.tokenize("don't $5 «hi»—ok.")).toEqual([
      "don",
      "'",
      "t",
      "$",
      "5",
      "«",
      "hi",
      "»",
      "—",
      "ok",
      ".",
    ])
  })

  it("keeps symbols that are not punctuation inside the word", () => {
    // € is Sc and 😀 is So: neither ASCII punctuation nor category P.
    expect(basic.tokenize("5€ a😀b a+b")).toEqual(["5€", "a😀b", "a", "+", "b"])
  })

  it("makes each CJK ideograph a word, outside the BMP too", () => {
    expect(basic.tokenize("hello中文world")).toEqual(["hello", "中", "文", "world"])
    expect(basic.tokenize("a\u{20000}b\u{2a6d6}c")).toEqual(["a", "\u{20000}", "b", "\u{2a6d6}", "c"])
    // Hangul and kana are not in BERT's CJK ranges. Uncased, accent stripping (NFD) leaves Hangul as
    // jamo and drops the voicing mark of ガ (U+3099 is Mn): bert-base-uncased's known behaviour.
    expect(basic.tokenize("한국어 ガイド")).toEqual([
      "\u1112\u1161\u11ab\u1100\u116e\u11a8\u110b\u1165",
      "カイト",
    ])
  })

  it("drops NUL, U+FFFD and control characters, and splits on every kind of whitespace", () => {
    expect(basic.tokenize("hel\u0000lo wor\ufffdld\u0007 a\u000bb \u200bc\u200b")).toEqual([
      "hello",
      "world",
      "ab",
      "c",
    ])
    expect(basic.tokenize("\thello\r\n\u00a0world\u3000x\u2028y  ")).toEqual(["hello", "world", "x", "y"])
    expect(basic.tokenize(" \u0000\t ")).toEqual([])
  })

  it("lowercases one code point at a time, as Hugging Face does (no final sigma)", () => {
    expect(basic.tokenize("ΟΔΟΣ İstanbul")).toEqual(["οδοσ", "istanbul"])
  })

  it("when cased, keeps case and accents but still composes to NFC", () => {
    expect(new BasicTokenizer(CASED).tokenize("Héllo E\u0301TE\u0301")).toEqual(["Héllo", "ÉTÉ"])
    expect(new BasicTokenizer({ ...CASED, stripAccents: true }).tokenize("Héllo")).toEqual(["Hello"])
    expect(new BasicTokenizer({ ...UNCASED, stripAccents: false }).tokenize("Héllo")).toEqual(["héllo"])
  })

  it("can leave CJK in words and control characters in place", () => {
    const raw = new BasicTokenizer({ lowercase: false, handleChineseChars: false, cleanText: false })
    expect(raw.tokenize("a中文b x\u0000y")).toEqual(["a中文b", "x\u0000y"])
  })

  it("keeps never-split words whole", () => {
    expect(new BasicTokenizer(UNCASED, new Set(["[CLS]"])).tokenize("[CLS] [cls]")).toEqual([
      "[CLS]",
      "[",
      "cls",
      "]",
    ])
  })
})

describe("isCjk", () => {
  it("matches BERT's ranges exactly, at their edges", () => {
    const edges = [0x4e00, 0x9fff, 0x3400, 0x4dbf, 0x20000, 0x2a6df, 0x2a700, 0x2b73f, 0x2b740, 0x2b81f]
    const more = [0x2b820, 0x2ceaf, 0xf900, 0xfaff, 0x2f800, 0x2fa1f]
    expect([...edges, ...more].every(isCjk)).toBe(true)
    const outside = [
      0x4dff, 0xa000, 0x33ff, 0x4dc0, 0x1ffff, 0x2a6e0, 0x2ceb0, 0xf8ff, 0xfb00, 0x2f7ff, 0x2fa20,
    ]
    expect(outside.filter(isCjk)).toEqual([])
  })
})

describe("BertTokenizer.tokenize", () => {
  it("splits words into the longest pieces, continuations marked ##", () => {
    expect(bert.tokenize("unwanted running runs")).toEqual([
      "un",
      "##want",
      "##ed",
      "run",
      "##ning",
      "run",
      "##s",
    ])
    expect(bert.tokenize("Héllo, World!")).toEqual(["hello", ",", "world", "!"])
  })

  it("tokenizes Chinese, and mixed text, one ideograph a token", () => {
    expect(bert.tokenize("中文")).toEqual(["中", "文"])
    expect(bert.tokenize("我爱中文")).toEqual(["[UNK]", "[UNK]", "中", "文"])
    expect(bert.tokenize("hello中文world")).toEqual(["hello", "中", "文", "world"])
  })

  it("treats U+20000 as one character", () => {
    expect(bert.tokenize("a\u{20000}a ab")).toEqual(["a", "\u{20000}", "a", "a", "##b"])
    expect(bert.tokenize("a\u{2a6d6}a")).toEqual(["a", "[UNK]", "a"])
  })

  it("makes a word [UNK] whole when any part of it has no piece", () => {
    expect(bert.tokenize("hellox 5€ a😀b")).toEqual(["[UNK]", "[UNK]", "[UNK]"])
  })

  it("makes a word longer than 100 characters [UNK] without trying", () => {
    expect(bert.tokenize(`a${"b".repeat(99)}`)).toEqual(["a", ...Array(99).fill("##b")])
    expect(bert.tokenize(`a${"b".repeat(100)}`)).toEqual(["[UNK]"])
    // Code points, not UTF-16 units: 50 astral ideographs are 100 units but 50 characters (and 50 words).
    expect(bert.tokenize("\u{20000}".repeat(50))).toEqual(Array(50).fill("\u{20000}"))
  })

  it("keeps special tokens whole, wherever they are, in their exact case", () => {
    expect(bert.tokenize("[CLS] hello [SEP]")).toEqual(["[CLS]", "hello", "[SEP]"])
    expect(bert.tokenize("hello[MASK]world[MASK][MASK]")).toEqual([
      "hello",
      "[MASK]",
      "world",
      "[MASK]",
      "[MASK]",
    ])
    expect(bert.tokenize("[cls] [UNK]")).toEqual(["[", "[UNK]", "]", "[UNK]"])
  })

  it("cleans and splits before matching pieces", () => {
    expect(bert.tokenize("hel\u0000lo\u00a0ΟΔΟΣ «naïve»—don't.")).toEqual([
      "hello",
      "οδοσ",
      "«",
      "naive",
      "»",
      "—",
      "don",
      "'",
      "t",
      ".",
    ])
  })

  it("when cased, matches the NFC form of accented letters", () => {
    expect(load(CASED).tokenize("e\u0301 é Hello")).toEqual(["é", "é", "[UNK]"])
  })
})

describe("BertTokenizer.encode", () => {
  it("adds [CLS] and [SEP], a full attention mask and token type 0", () => {
    expect(bert.encode("Hello world")).toEqual({
      ids: [2, 5, 6, 3],
      tokens: ["[CLS]", "hello", "world", "[SEP]"],
      attentionMask: [1, 1, 1, 1],
      tokenTypeIds: [0, 0, 0, 0],
      truncated: 0,
    })
    expect(bert.encode("hello", { addSpecialTokens: false }).ids).toEqual([5])
  })

  it("truncates to maxLength, special tokens included", () => {
    expect(bert.encode("hello world hello world", { maxLength: 4 })).toMatchObject({
      ids: [2, 5, 6, 3],
      truncated: 2,
    })
    expect(bert.encode("hello world", { maxLength: 3, truncation: false }).ids).toEqual([2, 5, 6, 3])
    expect(() => bert.encode("hello", { maxLength: 1 })).toThrow(
      "maxLength 1 leaves no room for the 2 special tokens",
    )
  })

  it("pads to maxLength with [PAD], mask 0", () => {
    expect(bert.encode("hello", { maxLength: 5, padding: true })).toEqual({
      ids: [2, 5, 3, 0, 0],
      tokens: ["[CLS]", "hello", "[SEP]", "[PAD]", "[PAD]"],
      attentionMask: [1, 1, 1, 0, 0],
      tokenTypeIds: [0, 0, 0, 0, 0],
      truncated: 0,
    })
    expect(() => bert.encode("hello", { padding: true })).toThrow("padding needs maxLength")
  })

  it("encodes a pair with token type 1 for the second segment, truncating the longer one first", () => {
    expect(bert.encodePair("hello", "world", { maxLength: 7, padding: true })).toEqual({
      ids: [2, 5, 3, 6, 3, 0, 0],
      tokens: ["[CLS]", "hello", "[SEP]", "world", "[SEP]", "[PAD]", "[PAD]"],
      attentionMask: [1, 1, 1, 1, 1, 0, 0],
      tokenTypeIds: [0, 0, 0, 1, 1, 0, 0],
      truncated: 0,
    })
    // 3 + 3 + 3 specials = 9 > 7: the second loses one (equal lengths), then the first (now longer).
    expect(bert.encodePair("hello world hello", "world hello world", { maxLength: 7 }).tokens).toEqual([
      "[CLS]",
      "hello",
      "world",
      "[SEP]",
      "world",
      "hello",
      "[SEP]",
    ])
    // 4 + 1: only the longer first segment is cut.
    expect(bert.encodePair("un run run run", "hello", { maxLength: 6 }).tokens).toEqual([
      "[CLS]",
      "un",
      "run",
      "[SEP]",
      "hello",
      "[SEP]",
    ])
  })
})

describe("BertTokenizer.encodeBatch", () => {
  it("packs rows into Int32Arrays padded to the longest row", () => {
    const b = bert.encodeBatch(["hello", "hello world", ["hello", "world"]])
    expect([b.rows, b.cols, b.truncatedRows]).toEqual([3, 5, 0])
    expect([...b.ids]).toEqual([2, 5, 3, 0, 0, 2, 5, 6, 3, 0, 2, 5, 3, 6, 3])
    expect([...b.attentionMask]).toEqual([1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1])
    expect([...b.tokenTypeIds]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    expect([...b.lengths]).toEqual([3, 4, 5])
    expect(b.ids).toBeInstanceOf(Int32Array)
  })

  it("pads to maxLength and truncates longer rows", () => {
    const b = bert.encodeBatch(["hello", "hello world hello"], { maxLength: 4, padding: "max_length" })
    expect([b.rows, b.cols, b.truncatedRows]).toEqual([2, 4, 1])
    expect([...b.ids]).toEqual([2, 5, 3, 0, 2, 5, 6, 3])
    expect([...b.lengths]).toEqual([3, 4])
    expect(bert.encodeBatch([]).ids).toEqual(new Int32Array(0))
  })
})

describe("BertTokenizer.decode", () => {
  const ids = bert.encode("Unwanted, world! Don't").ids

  it("rejoins pieces and cleans up spaces before punctuation, as Hugging Face does", () => {
    expect(ids).toEqual([2, 7, 8, 9, 18, 6, 20, 22, 21, 23, 3])
    expect(bert.decode(ids)).toBe("[CLS] unwanted, world! don't [SEP]")
    expect(bert.decode(ids, { skipSpecialTokens: true })).toBe("unwanted, world! don't")
    expect(bert.decode(ids, { cleanUpSpaces: false })).toBe("[CLS] unwanted , world ! don ' t [SEP]")
  })

  it("skips [UNK] and padding as special tokens, and reads unknown ids as [UNK]", () => {
    expect(bert.decode([2, 5, 1, 3, 0, 0], { skipSpecialTokens: true })).toBe("hello")
    expect(bert.decode([5, 999])).toBe("hello [UNK]")
  })
})
