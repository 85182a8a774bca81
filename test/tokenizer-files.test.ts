// Loading vocab.txt and Hugging Face tokenizer.json files: golden tokenization of the fixtures and the
// exact text of every error a bad file gets.
import { readFileSync } from "node:fs"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import {
  formatTokenizerJson,
  loadTokenizer,
  parseTokenizerJson,
  type TokenizerFileError,
  tokenizerFromVocabTxt,
} from "../src/tokenizer/index.js"

const FIXTURES = "test/fixtures/tokenizer"

/** The message of the error a file gets. */
const vocabTxtError = (text: string): string =>
  Either.match(tokenizerFromVocabTxt(text, "v.txt"), {
    onLeft: (e: TokenizerFileError) => e.message,
    onRight: () => "no error",
  })

const jsonError = (doc: unknown): string =>
  Either.match(parseTokenizerJson(typeof doc === "string" ? doc : JSON.stringify(doc), "t.json"), {
    onLeft: (e: TokenizerFileError) => e.message,
    onRight: () => "no error",
  })

/** The parts of a tokenizer.json the tests change. */
interface Doc {
  normalizer: Record<string, unknown>
  pre_tokenizer: Record<string, unknown>
  model: Record<string, unknown> & { vocab?: Record<string, unknown> }
  added_tokens?: unknown
}

/** A valid minimal tokenizer.json, changed by `edit`. */
const doc = (edit: (d: Doc) => void = () => {}): Doc => {
  const d: Doc = {
    normalizer: { type: "BertNormalizer", lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      vocab: { "[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3 },
    },
  }
  edit(d)
  return d
}

describe("vocab.txt", () => {
  it("loads by path, ids by line", async () => {
    const bert = await Effect.runPromise(loadTokenizer(`${FIXTURES}/vocab.txt`))
    expect(bert.vocab.size).toBe(35)
    expect([bert.vocab.id("[CLS]"), bert.vocab.id("hello"), bert.vocab.id("\u{20000}")]).toEqual([2, 5, 17])
  })

  it("accepts CRLF line ends", () => {
    const bert = Either.getOrThrow(
      tokenizerFromVocabTxt("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhi\r\n", "v.txt"),
    )
    expect(bert.encode("Hi").tokens).toEqual(["[CLS]", "hi", "[SEP]"])
  })

  it("says what is wrong with a bad one, and where", () => {
    expect(vocabTxtError("")).toBe(
      "v.txt: the file is empty. A vocab.txt has one token per line, and a token's id is its line number counted from 0.",
    )
    expect(vocabTxtError("[PAD]\n\n[UNK]\n")).toBe(
      "v.txt:2: empty line. Remove the blank line: every line is a token, and the tokens after it would get the wrong ids.",
    )
    expect(vocabTxtError("[PAD]\n[UNK]\n[PAD]\n")).toBe(
      'v.txt:3: the token "[PAD]" is already on line 1. Each token must appear once: remove one of the two lines (and check the model\'s ids).',
    )
    expect(vocabTxtError("[PAD]\n[UNK]\n[CLS]\nhello\n")).toBe(
      'v.txt: no "[SEP]" token. A BERT vocabulary needs [PAD], [UNK], [CLS], [SEP]: add the missing one (they usually come first).',
    )
  })

  it("fails with a tagged error when the file cannot be read", async () => {
    const result = await Effect.runPromise(Effect.either(loadTokenizer(`${FIXTURES}/missing.txt`)))
    expect(Either.isLeft(result) && [result.left._tag, result.left.message]).toEqual([
      "TokenizerFileError",
      `${FIXTURES}/missing.txt: cannot be read (ENOENT). Check that the path names a vocab.txt or tokenizer.json file.`,
    ])
  })
})

describe("tokenizer.json", () => {
  it("follows its normalizer, prefix, word length limit and added tokens", async () => {
    const bert = await Effect.runPromise(loadTokenizer(`${FIXTURES}/tokenizer.json`))
    expect(bert.vocab.size).toBe(11)
    expect(bert.config.basic).toEqual({
      cleanText: true,
      handleChineseChars: false,
      lowercase: false,
      stripAccents: true,
    })
    expect(bert.config.wordpiece).toEqual({ unkToken: "[UNK]", prefix: "@@", maxInputCharsPerWord: 5 })
    // Cased and accent-stripped; "Hellos" is in the vocabulary but longer than 5; CJK stays in the word.
    const e = bert.encode("Héllo! Hellos 中文 x<url>")
    expect(e.tokens).toEqual(["[CLS]", "Hello", "!", "[UNK]", "中", "@@文", "[UNK]", "<url>", "[SEP]"])
    expect(e.ids).toEqual([2, 4, 8, 1, 5, 6, 1, 10, 3])
    expect(bert.decode([4, 7, 8])).toBe("Hellos!")
  })

  it("says what is wrong with a bad one", () => {
    expect(jsonError("[]")).toBe("t.json: the top level is not an object. Is this a tokenizer.json?")
    expect(jsonError({})).toBe(
      't.json: no "model" object. A Hugging Face tokenizer.json has a "model": is this the right file?',
    )
    expect(jsonError(doc((d) => (d.model.type = "BPE")))).toBe(
      't.json: model.type is "BPE", not "WordPiece". Only BERT-style WordPiece tokenizers are supported (tokenizer.json of a BERT model).',
    )
    expect(jsonError(doc((d) => (d.normalizer = { type: "Sequence", normalizers: [] })))).toBe(
      't.json: normalizer is of type "Sequence", not a BertNormalizer. Only BERT-style WordPiece tokenizers are supported (tokenizer.json of a BERT model).',
    )
    expect(jsonError(doc((d) => (d.normalizer.lowercase = "yes")))).toBe(
      't.json: normalizer.lowercase is "yes", not true or false. Make normalizer.lowercase true or false.',
    )
    expect(jsonError(doc((d) => (d.pre_tokenizer = { type: "Whitespace" })))).toBe(
      't.json: pre_tokenizer is of type "Whitespace", not a BertPreTokenizer. Only BERT-style WordPiece tokenizers are supported (tokenizer.json of a BERT model).',
    )
    expect(jsonError(doc((d) => (d.model.max_input_chars_per_word = 0)))).toBe(
      "t.json: model.max_input_chars_per_word is 0, not a positive integer. Make model.max_input_chars_per_word a positive integer.",
    )
  })

  it("checks the vocabulary's ids and special tokens", () => {
    expect(jsonError(doc((d) => delete d.model.vocab))).toBe(
      't.json: model.vocab is missing. A WordPiece model.vocab maps each token to its id: {"[PAD]": 0, "[UNK]": 1, …}.',
    )
    expect(jsonError(doc((d) => (d.model.vocab!["[SEP]"] = 1.5)))).toBe(
      't.json: model.vocab["[SEP]"] is 1.5, not an id. Ids are integers from 0 up.',
    )
    expect(jsonError(doc((d) => (d.model.vocab!["[SEP]"] = 1)))).toBe(
      't.json: model.vocab["[SEP]"]: id 1 is also the id of "[UNK]". Every token needs an id of its own.',
    )
    expect(jsonError(doc((d) => (d.model.vocab!["[SEP]"] = 1e9)))).toBe(
      't.json: model.vocab["[SEP]"] is 1000000000: 4 tokens have the ids 0 to 3. Ids must run from 0 without gaps.',
    )
    expect(jsonError(doc((d) => (d.model.vocab!.hello = 5)))).toBe(
      't.json: model.vocab["hello"] is 5: 5 tokens have the ids 0 to 4. Ids must run from 0 without gaps.',
    )
    const gap = doc((d) => {
      d.model.vocab!.hello = 5
      d.added_tokens = [{ id: 0, content: "[PAD]" }]
    })
    expect(jsonError(gap)).toBe(
      "t.json: model.vocab has no token with id 4 (ids run up to 5). Ids must run from 0 without gaps.",
    )
    expect(jsonError(doc((d) => (d.model.unk_token = "<unk>")))).toBe(
      't.json: no "<unk>" token. A BERT vocabulary needs [PAD], <unk>, [CLS], [SEP]: add the missing one (they usually come first).',
    )
    expect(jsonError(doc((d) => (d.added_tokens = [{ id: 3, content: "[CLS]" }])))).toBe(
      't.json: added_tokens[0] gives "[CLS]" the id 3, but model.vocab gives it 2. An added token must keep its vocabulary id.',
    )
  })

  it("points at a JSON syntax error by line and column", () => {
    expect(jsonError('{\n  "model": {\n    "vocab": {"a": 0,}\n  }\n}')).toBe(
      "t.json:3:22: not valid JSON: Expected double-quoted property name. Fix the JSON syntax there.",
    )
  })

  it("round-trips through formatTokenizerJson", () => {
    const path = `${FIXTURES}/vocab.txt`
    const bert = Either.getOrThrow(tokenizerFromVocabTxt(readFileSync(path, "utf8"), path))
    const again = Either.getOrThrow(parseTokenizerJson(formatTokenizerJson(bert), "again.json"))
    expect(again.vocab.tokens()).toEqual(bert.vocab.tokens())
    expect(again.config.basic).toEqual({ cleanText: true, handleChineseChars: true, lowercase: true })
    expect(again.config.wordpiece).toEqual(bert.config.wordpiece)
    const text = "Héllo [MASK] 中文\u{20000}, unwanted runs!"
    expect(again.encode(text)).toEqual(bert.encode(text))
  })
})
