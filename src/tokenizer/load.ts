/**
 * Loading a tokenizer from a file: a `tokenizer.json` (which says how to normalize) or a `vocab.txt`
 * (which does not: the caller says whether the model is cased, as Hugging Face's `do_lower_case` does).
 */
import { readFile } from "node:fs/promises"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { type BasicOptions, UNCASED } from "./basic.js"
import { BertTokenizer } from "./bert.js"
import { TokenizerFileError } from "./errors.js"
import { parseTokenizerJson } from "./tokenizer-json.js"
import { BERT_SPECIALS, missingSpecial, parseVocabTxt } from "./vocab.js"
import { BERT_WORDPIECE } from "./wordpiece.js"

/** A BERT tokenizer over the vocabulary in a `vocab.txt`'s text; `file` names it in errors. */
export const tokenizerFromVocabTxt = (
  text: string,
  file: string,
  basic: BasicOptions = UNCASED,
): Either.Either<BertTokenizer, TokenizerFileError> =>
  Either.flatMap(parseVocabTxt(text, file), (vocab) => {
    const missing = missingSpecial(vocab, BERT_SPECIALS, file)
    if (missing !== undefined) return Either.left(missing)
    return Either.right(
      new BertTokenizer(vocab, { basic, wordpiece: BERT_WORDPIECE, specials: BERT_SPECIALS }),
    )
  })

/**
 * Reads `path`: a Hugging Face `tokenizer.json` if its name ends in `.json`, else a `vocab.txt` tokenized
 * with `basic` (default: uncased, as `bert-base-uncased`).
 */
export const loadTokenizer = (
  path: string,
  basic: BasicOptions = UNCASED,
): Effect.Effect<BertTokenizer, TokenizerFileError> =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (e) =>
      new TokenizerFileError({
        file: path,
        problem: `cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
        hint: "Check that the path names a vocab.txt or tokenizer.json file.",
      }),
  }).pipe(
    Effect.flatMap((text) =>
      path.endsWith(".json") ? parseTokenizerJson(text, path) : tokenizerFromVocabTxt(text, path, basic),
    ),
  )
