/**
 * Trains a WordPiece vocabulary from text, as Hugging Face `tokenizers`' `WordPieceTrainer` does: that
 * trainer is its BPE trainer with the `##` continuation prefix, and the vocabulary it ends with is the
 * WordPiece vocabulary. So:
 *
 *   1. count the basic tokens (words) of the corpus (BERT's basic tokenization);
 *   2. the vocabulary starts with the special tokens, then the alphabet (every character of the words,
 *      or the `limitAlphabet` most frequent), then `##c` for each character that follows another in a word;
 *   3. every word is a sequence of those symbols (`hello` -> `h ##e ##l ##l ##o`); repeatedly, the most
 *      frequent adjacent pair (counted over all words, weighted by word frequency) is merged everywhere
 *      into a new token (`h` + `##e` -> `he`, `##l` + `##l` -> `##ll`), until the vocabulary has
 *      `vocabSize` tokens, no pair is left, or the best pair is rarer than `minFrequency`.
 *
 * Deterministic: pairs of equal frequency are merged in order of their ids (left id, then right id,
 * smaller first: Hugging Face's own tie-break), and ids are given in a fixed order (specials as listed,
 * alphabet and `##` variants by code point, merges as made), where Hugging Face gives the `##` variants ids
 * in hash-map order. With `limitAlphabet`, characters of equal frequency are dropped higher code point
 * first (Hugging Face: unspecified). The bookkeeping is the reference's: a priority queue with lazy
 * count updates, and each merge touches only the words that contain the pair.
 */
import { type BasicOptions, UNCASED } from "./basic.js"
import { BertTokenizer } from "./bert.js"
import { BERT_SPECIALS, Vocab } from "./vocab.js"
import { WordCounter } from "./word-counter.js"
import { BERT_WORDPIECE } from "./wordpiece.js"

/** What to train. */
export interface TrainOptions {
  /** stop when the vocabulary has this many tokens (specials and alphabet included) */
  readonly vocabSize: number
  /** do not merge a pair seen fewer times than this; default 0 */
  readonly minFrequency?: number
  /** keep only this many characters, the most frequent, in the alphabet; default all */
  readonly limitAlphabet?: number
  /** characters to have in the alphabet even if the corpus lacks them (every character of each string) */
  readonly initialAlphabet?: ReadonlyArray<string>
  /** the first tokens, in this order; default `[PAD] [UNK] [CLS] [SEP] [MASK]` */
  readonly specialTokens?: ReadonlyArray<string>
  /** the continuation prefix; default `##` */
  readonly prefix?: string
}

/** A candidate merge in the queue; `count` may be stale (it is checked when popped). */
interface Merge {
  readonly a: number
  readonly b: number
  count: number
  /** the words that had the pair when it was queued, ascending */
  readonly pos: ReadonlyArray<number>
}

/** Higher count first, then the smaller pair. */
const before = (x: Merge, y: Merge): boolean =>
  x.count !== y.count ? x.count > y.count : x.a !== y.a ? x.a < y.a : x.b < y.b

/** A binary max-heap of merges. */
class MergeQueue {
  private readonly heap: Merge[] = []

  get size(): number {
    return this.heap.length
  }

  push(m: Merge): void {
    const h = this.heap
    let i = h.length
    h.push(m)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(m, h[parent]!)) break
      h[i] = h[parent]!
      i = parent
    }
    h[i] = m
  }

  pop(): Merge | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (top === undefined || last === undefined || h.length === 0) return top
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= h.length) break
      const r = l + 1
      const child = r < h.length && before(h[r]!, h[l]!) ? r : l
      if (!before(h[child]!, last)) break
      h[i] = h[child]!
      i = child
    }
    h[i] = last
    return top
  }
}

const byCodePoint = (x: string, y: string): number => x.codePointAt(0)! - y.codePointAt(0)!

/** The trained vocabulary's tokens, in id order. */
export const trainWordPiece = (counts: ReadonlyMap<string, number>, options: TrainOptions): string[] => {
  const prefix = options.prefix ?? BERT_WORDPIECE.prefix
  const minFrequency = options.minFrequency ?? 0
  const tokens: string[] = []
  const ids = new Map<string, number>()
  const add = (t: string): number => {
    let id = ids.get(t)
    if (id === undefined) {
      id = tokens.length
      tokens.push(t)
      ids.set(t, id)
    }
    return id
  }
  const specials = options.specialTokens ?? [
    BERT_SPECIALS.pad,
    BERT_SPECIALS.unk,
    BERT_SPECIALS.cls,
    BERT_SPECIALS.sep,
    BERT_SPECIALS.mask,
  ]
  for (const s of specials) add(s)

  // The alphabet, limited to the most frequent characters if asked.
  const words = [...counts.keys()].sort()
  const alphabet = new Map<string, number>()
  for (const w of words) {
    const n = counts.get(w)!
    for (const ch of w) alphabet.set(ch, (alphabet.get(ch) ?? 0) + n)
  }
  for (const s of options.initialAlphabet ?? [])
    for (const ch of s) alphabet.set(ch, Number.POSITIVE_INFINITY)
  let kept = [...alphabet.keys()]
  if (options.limitAlphabet !== undefined && kept.length > options.limitAlphabet) {
    const more = (x: string, y: string): number => {
      const cx = alphabet.get(x)!
      const cy = alphabet.get(y)!
      return cx > cy ? -1 : cx < cy ? 1 : byCodePoint(x, y)
    }
    kept.sort(more)
    kept = kept.slice(0, options.limitAlphabet)
  }
  kept.sort(byCodePoint)
  const inAlphabet = new Set(kept)
  for (const ch of kept) add(ch)

  // The continuation variants, by code point, then every word as symbol ids.
  const continuing = new Set<string>()
  for (const w of words) {
    let first = true
    for (const ch of w) {
      if (!first && inAlphabet.has(ch)) continuing.add(ch)
      first = false
    }
  }
  for (const ch of [...continuing].sort(byCodePoint)) add(prefix + ch)
  const symbols: number[][] = []
  const freq: number[] = []
  for (const w of words) {
    const word: number[] = []
    let first = true
    // A character left out of the alphabet is left out of the word, as in the reference.
    for (const ch of w) {
      if (inAlphabet.has(ch)) word.push(ids.get(first ? ch : prefix + ch)!)
      first = false
    }
    symbols.push(word)
    freq.push(counts.get(w)!)
  }

  // Pair counts and where each pair occurs. A pair is one number, `a * width + b`: no id reaches `width`
  // (merging stops at vocabSize, and each new token takes a merge, which removes a symbol), and up to a
  // width of 2^15 the key is a small integer, which V8's Map hashes fastest.
  let merges = 0
  for (const word of symbols) merges += Math.max(0, word.length - 1)
  const width = Math.max(tokens.length, Math.min(options.vocabSize, tokens.length + merges)) + 1
  const pairCounts = new Map<number, number>()
  const where = new Map<number, number[]>()
  const note = (a: number, b: number, delta: number, w: number) => {
    const k = a * width + b
    pairCounts.set(k, (pairCounts.get(k) ?? 0) + delta * freq[w]!)
    if (delta > 0) {
      const pos = where.get(k)
      // Words are visited one after another, so a repeat of a pair in the same word is the last entry.
      if (pos === undefined) where.set(k, [w])
      else if (pos[pos.length - 1] !== w) pos.push(w)
    }
  }
  for (const [w, word] of symbols.entries())
    for (let i = 0; i + 1 < word.length; i++) note(word[i]!, word[i + 1]!, 1, w)
  const queue = new MergeQueue()
  const enqueue = () => {
    for (const [k, pos] of where) {
      const count = pairCounts.get(k)!
      if (count > 0) queue.push({ a: Math.floor(k / width), b: k % width, count, pos })
    }
    where.clear()
  }
  enqueue()

  while (tokens.length < options.vocabSize) {
    const top = queue.pop()
    if (top === undefined) break
    const current = pairCounts.get(top.a * width + top.b)!
    if (top.count !== current) {
      top.count = current
      queue.push(top)
      continue
    }
    if (top.count < 1 || minFrequency > top.count) break
    const right = tokens[top.b]!
    const merged = tokens[top.a]! + (right.startsWith(prefix) ? right.slice(prefix.length) : right)
    const id = add(merged)
    // The merged pair's own count is left as it is, as in the reference: it no longer occurs.
    for (const w of top.pos) mergeInWord(symbols[w]!, top.a, top.b, id, w, note)
    enqueue()
  }
  return tokens
}

/** Replaces every non-overlapping `a b` in `word` (left to right) by `id`, noting the pairs that change. */
const mergeInWord = (
  word: number[],
  a: number,
  b: number,
  id: number,
  w: number,
  note: (a: number, b: number, delta: number, w: number) => void,
): void => {
  for (let i = 0; i + 1 < word.length; i++) {
    if (word[i] !== a || word[i + 1] !== b) continue
    if (i > 0) {
      note(word[i - 1]!, a, -1, w)
      note(word[i - 1]!, id, 1, w)
    }
    word.splice(i, 2, id)
    if (i + 1 < word.length) {
      note(b, word[i + 1]!, -1, w)
      note(id, word[i + 1]!, 1, w)
    }
  }
}

/**
 * Counts `texts` and trains a BERT tokenizer on them, with the same basic tokenization for both. Custom
 * `specialTokens` must include BERT's `[PAD] [UNK] [CLS] [SEP]`.
 */
export const trainBertTokenizer = (
  texts: Iterable<string>,
  options: TrainOptions & { readonly basic?: BasicOptions },
): BertTokenizer => {
  const basic = options.basic ?? UNCASED
  const counter = new WordCounter(basic)
  for (const t of texts) counter.add(t)
  const vocab = Vocab.fromTokens(trainWordPiece(counter.counts(), options))!
  const prefix = options.prefix ?? BERT_WORDPIECE.prefix
  return new BertTokenizer(vocab, {
    basic,
    wordpiece: { ...BERT_WORDPIECE, prefix },
    specials: BERT_SPECIALS,
  })
}
