/**
 * The BERT WordPiece tokenizer library: basic tokenization, WordPiece, vocabularies, encoding, training.
 *
 * Its modules import Effect by module (`effect/Either`), not from the `effect` barrel: loading the whole
 * barrel costs most of a second, which every unbundled import (a test file, a stage run from source) pays.
 */
export { type BasicOptions, BasicTokenizer, CASED, UNCASED } from "./basic.js"
export { type BatchItem, type BertConfig, BertTokenizer, type DecodeOptions } from "./bert.js"
export { isCjk } from "./chars.js"
export type { BatchEncodeOptions, BatchEncoding, EncodeOptions, Encoding } from "./encoding.js"
export { TokenizerFileError } from "./errors.js"
export { loadTokenizer, tokenizerFromVocabTxt } from "./load.js"
export { formatTokenizerJson, parseTokenizerJson } from "./tokenizer-json.js"
export { type TrainOptions, trainBertTokenizer, trainWordPiece } from "./train.js"
export { BERT_SPECIALS, formatVocabTxt, parseVocabTxt, type SpecialTokens, Vocab } from "./vocab.js"
export { WordCounter } from "./word-counter.js"
export { BERT_WORDPIECE, WordPiece, type WordPieceOptions } from "./wordpiece.js"
