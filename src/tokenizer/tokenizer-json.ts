/**
 * Hugging Face `tokenizer.json` for BERT WordPiece tokenizers: read (validated, with an error that names
 * the file and the offending field) and written (so a vocabulary trained here loads in `tokenizers` and
 * `transformers` too).
 *
 * Read: `model` (a WordPiece: `vocab`, `unk_token`, `continuing_subword_prefix`,
 * `max_input_chars_per_word`), `normalizer` (a `BertNormalizer`'s `clean_text`, `handle_chinese_chars`,
 * `strip_accents`, `lowercase`, or none), `pre_tokenizer` (`BertPreTokenizer` or none) and `added_tokens`
 * (kept whole, matched as written, where `tokenizers` matches a `normalized` one after normalizing).
 * Ignored: `truncation` and `padding` (the caller chooses), `post_processor` (always `[CLS] … [SEP]`) and
 * `decoder` (always WordPiece's). Text is tokenized as the slow `BertTokenizer` does it, NFC included,
 * which the fast `BertNormalizer` skips: the two differ only on text not already in NFC.
 */
import * as Either from "effect/Either"
import type { BasicOptions } from "./basic.js"
import { BertTokenizer } from "./bert.js"
import { TokenizerFileError } from "./errors.js"
import { BERT_SPECIALS, missingSpecial, type SpecialTokens, Vocab } from "./vocab.js"

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v)

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0

/** 1-based line and column of a 0-based offset. */
const lineColumn = (text: string, offset: number): { line: number; column: number } => {
  let line = 1
  let lineStart = 0
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) {
    line++
    lineStart = i + 1
  }
  return { line, column: offset - lineStart + 1 }
}

/** A JSON value that cannot be what tokenizer.json should have there. */
class Invalid {
  constructor(
    readonly problem: string,
    readonly hint: string,
  ) {}
}

const WORDPIECE_ONLY = "Only BERT-style WordPiece tokenizers are supported (tokenizer.json of a BERT model)."

const field = <T>(
  obj: Json,
  path: string,
  key: string,
  ok: (v: unknown) => v is T,
  kind: string,
  fallback: T,
): T => {
  const v = obj[key]
  if (v === undefined) return fallback
  if (!ok(v))
    throw new Invalid(`${path}.${key} is ${JSON.stringify(v)}, not ${kind}`, `Make ${path}.${key} ${kind}.`)
  return v
}

const isBool = (v: unknown): v is boolean => typeof v === "boolean"
const isString = (v: unknown): v is string => typeof v === "string"

const readNormalizer = (v: unknown): BasicOptions => {
  // No normalizer: no cleaning, no CJK splitting, no casing; BertPreTokenizer still splits.
  if (v === undefined || v === null) return { lowercase: false, handleChineseChars: false, cleanText: false }
  if (!isObject(v) || v.type !== "BertNormalizer")
    throw new Invalid(
      `normalizer is ${isObject(v) ? `of type ${JSON.stringify(v.type)}` : JSON.stringify(v)}, not a BertNormalizer`,
      WORDPIECE_ONLY,
    )
  const strip = v.strip_accents
  if (strip !== undefined && strip !== null && typeof strip !== "boolean")
    throw new Invalid(
      `normalizer.strip_accents is ${JSON.stringify(strip)}, not true, false or null`,
      "Make normalizer.strip_accents true, false or null (null: strip when lowercasing).",
    )
  return {
    cleanText: field(v, "normalizer", "clean_text", isBool, "true or false", true),
    handleChineseChars: field(v, "normalizer", "handle_chinese_chars", isBool, "true or false", true),
    lowercase: field(v, "normalizer", "lowercase", isBool, "true or false", true),
    ...(typeof strip === "boolean" ? { stripAccents: strip } : {}),
  }
}

const readVocab = (model: Json, added: unknown): { tokens: string[]; added: string[] } => {
  const vocab = model.vocab
  if (!isObject(vocab))
    throw new Invalid(
      vocab === undefined ? "model.vocab is missing" : "model.vocab is not an object",
      'A WordPiece model.vocab maps each token to its id: {"[PAD]": 0, "[UNK]": 1, …}.',
    )
  const byId: string[] = []
  // More ids than tokens leaves a gap; checking here keeps a stray 1e9 from making a sparse array to walk.
  const bound = Object.keys(vocab).length + (Array.isArray(added) ? added.length : 0)
  const put = (token: string, id: unknown, path: string) => {
    if (!isCount(id))
      throw new Invalid(`${path} is ${JSON.stringify(id)}, not an id`, "Ids are integers from 0 up.")
    if (id >= bound)
      throw new Invalid(
        `${path} is ${id}: ${bound} tokens have the ids 0 to ${bound - 1}`,
        "Ids must run from 0 without gaps.",
      )
    const other = byId[id]
    if (other !== undefined && other !== token)
      throw new Invalid(
        `${path}: id ${id} is also the id of ${JSON.stringify(other)}`,
        "Every token needs an id of its own.",
      )
    byId[id] = token
  }
  for (const [token, id] of Object.entries(vocab)) put(token, id, `model.vocab[${JSON.stringify(token)}]`)
  if (byId.length === 0) throw new Invalid("model.vocab is empty", "A vocabulary needs tokens.")
  const addedTokens: string[] = []
  if (added !== undefined && added !== null) {
    if (!Array.isArray(added)) throw new Invalid("added_tokens is not a list", "Make added_tokens a list.")
    for (const [i, t] of added.entries()) {
      const path = `added_tokens[${i}]`
      if (!isObject(t) || typeof t.content !== "string" || t.content === "")
        throw new Invalid(`${path} has no content`, `Give ${path} a "content" string and an "id".`)
      const known = Object.hasOwn(vocab, t.content) ? vocab[t.content] : undefined
      if (known !== undefined && known !== t.id)
        throw new Invalid(
          `${path} gives ${JSON.stringify(t.content)} the id ${JSON.stringify(t.id)}, but model.vocab gives it ${known}`,
          "An added token must keep its vocabulary id.",
        )
      put(t.content, t.id, `${path}.id`)
      addedTokens.push(t.content)
    }
  }
  // Ids index the model's embedding rows: a gap is a row no token reaches, most likely a damaged file.
  for (let id = 0; id < byId.length; id++)
    if (byId[id] === undefined)
      throw new Invalid(
        `model.vocab has no token with id ${id} (ids run up to ${byId.length - 1})`,
        "Ids must run from 0 without gaps.",
      )
  return { tokens: byId, added: addedTokens }
}

const read = (text: string, file: string): BertTokenizer => {
  let root: unknown
  try {
    root = JSON.parse(text)
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e)
    const at = /^(.*) in JSON at position (\d+)/.exec(message)
    if (at !== null)
      throw new TokenizerFileError({
        file,
        ...lineColumn(text, Number(at[2])),
        problem: `not valid JSON: ${at[1]}`,
        hint: "Fix the JSON syntax there.",
      })
    throw new Invalid(`not valid JSON: ${message}`, "Fix the JSON syntax.")
  }
  if (!isObject(root)) throw new Invalid("the top level is not an object", "Is this a tokenizer.json?")
  const model = root.model
  if (!isObject(model))
    throw new Invalid(
      'no "model" object',
      'A Hugging Face tokenizer.json has a "model": is this the right file?',
    )
  if (model.type !== undefined && model.type !== "WordPiece")
    throw new Invalid(`model.type is ${JSON.stringify(model.type)}, not "WordPiece"`, WORDPIECE_ONLY)
  const pre = root.pre_tokenizer
  if (pre !== undefined && pre !== null && !(isObject(pre) && pre.type === "BertPreTokenizer"))
    throw new Invalid(
      `pre_tokenizer is ${isObject(pre) ? `of type ${JSON.stringify(pre.type)}` : JSON.stringify(pre)}, not a BertPreTokenizer`,
      WORDPIECE_ONLY,
    )
  const basic = readNormalizer(root.normalizer)
  const { tokens, added } = readVocab(model, root.added_tokens)
  const unkToken = field(model, "model", "unk_token", isString, "a string", "[UNK]")
  const prefix = field(model, "model", "continuing_subword_prefix", isString, "a string", "##")
  const isPositive = (v: unknown): v is number => isCount(v) && v > 0
  const maxInputCharsPerWord = field(
    model,
    "model",
    "max_input_chars_per_word",
    isPositive,
    "a positive integer",
    100,
  )
  const vocab = Vocab.fromTokens(tokens)!
  const specials: SpecialTokens = { ...BERT_SPECIALS, unk: unkToken }
  const missing = missingSpecial(vocab, specials, file)
  if (missing !== undefined) throw missing
  return new BertTokenizer(vocab, {
    basic,
    wordpiece: { unkToken, prefix, maxInputCharsPerWord },
    specials,
    addedTokens: added,
  })
}

/** Reads a Hugging Face BERT `tokenizer.json`; `file` names it in errors. */
export const parseTokenizerJson = (
  text: string,
  file: string,
): Either.Either<BertTokenizer, TokenizerFileError> => {
  try {
    return Either.right(read(text, file))
  } catch (e) {
    if (e instanceof TokenizerFileError) return Either.left(e)
    if (e instanceof Invalid)
      return Either.left(new TokenizerFileError({ file, problem: e.problem, hint: e.hint }))
    throw e
  }
}

/** Writes a `tokenizer.json` that Hugging Face `tokenizers` loads as the same tokenizer. */
export const formatTokenizerJson = (tokenizer: BertTokenizer): string => {
  const { vocab, config } = tokenizer
  const { specials, basic, wordpiece } = config
  const specialSet = new Set([specials.pad, specials.unk, specials.cls, specials.sep, specials.mask])
  const addedTokens = [...new Set([...specialSet, ...(config.addedTokens ?? [])])]
    .filter((t) => vocab.has(t))
    .map((t) => ({ token: t, id: vocab.id(t)! }))
    .sort((a, b) => a.id - b.id)
    .map(({ token, id }) => ({
      id,
      content: token,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: specialSet.has(token),
    }))
  const doc = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: {
      type: "BertNormalizer",
      clean_text: basic.cleanText,
      handle_chinese_chars: basic.handleChineseChars,
      strip_accents: basic.stripAccents ?? null,
      lowercase: basic.lowercase,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "BertProcessing",
      sep: [specials.sep, vocab.id(specials.sep)],
      cls: [specials.cls, vocab.id(specials.cls)],
    },
    decoder: { type: "WordPiece", prefix: wordpiece.prefix, cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: wordpiece.unkToken,
      continuing_subword_prefix: wordpiece.prefix,
      max_input_chars_per_word: wordpiece.maxInputCharsPerWord,
      vocab: "VOCAB",
    },
  }
  // The vocabulary is written by hand, in id order: an object would move integer-like keys ("1", "42")
  // to the front, and a token named "__proto__" would not survive as a key.
  const entries = vocab
    .tokens()
    .map((t, i) => `      ${JSON.stringify(t)}: ${i}`)
    .join(",\n")
  return `${JSON.stringify(doc, null, 2).replace('"vocab": "VOCAB"', `"vocab": {\n${entries}\n    }`)}\n`
}
