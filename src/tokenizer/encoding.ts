/**
 * From token ids to model inputs: `[CLS] a [SEP]` (or `[CLS] a [SEP] b [SEP]`), truncation, padding,
 * attention mask and token type ids, as Hugging Face's `prepare_for_model` builds them; and batches packed
 * row-major into `Int32Array`s, ready for a tensor or a binary artifact.
 */

/** How to shape one encoding. */
export interface EncodeOptions {
  /** the most ids in the result, special tokens included */
  readonly maxLength?: number
  /**
   * Drop tokens from the end to fit `maxLength`; from a pair, one at a time from the longer segment (the
   * second when equal: Hugging Face's `longest_first`). Defaults to true when `maxLength` is given (where
   * Hugging Face defaults to false and only warns).
   */
  readonly truncation?: boolean
  /** pad with the padding token up to `maxLength` (attention mask 0, token type 0); default false */
  readonly padding?: boolean
  /** add `[CLS]` and `[SEP]`; default true */
  readonly addSpecialTokens?: boolean
}

/** One encoded text or text pair, every array the same length. */
export interface Encoding {
  readonly ids: ReadonlyArray<number>
  /** the tokens of `ids` */
  readonly tokens: ReadonlyArray<string>
  /** 1 for a real token, 0 for padding */
  readonly attentionMask: ReadonlyArray<number>
  /** 0 for the first segment (with `[CLS]` and its `[SEP]`) and for padding, 1 for the second */
  readonly tokenTypeIds: ReadonlyArray<number>
  /** how many tokens truncation dropped */
  readonly truncated: number
}

/** How to shape a batch. */
export interface BatchEncodeOptions {
  /** as for one encoding */
  readonly maxLength?: number
  /** as for one encoding: defaults to true when `maxLength` is given */
  readonly truncation?: boolean
  /** the row length: the longest row (default), or `maxLength` (the longest row if one is longer, untruncated) */
  readonly padding?: "longest" | "max_length"
  /** add `[CLS]` and `[SEP]`; default true */
  readonly addSpecialTokens?: boolean
}

/** A batch as `rows × cols` row-major typed arrays. */
export interface BatchEncoding {
  readonly rows: number
  readonly cols: number
  readonly ids: Int32Array
  readonly attentionMask: Int32Array
  readonly tokenTypeIds: Int32Array
  /** each row's length before padding */
  readonly lengths: Int32Array
  /** how many rows truncation shortened */
  readonly truncatedRows: number
}

/** The ids of the special tokens an encoding uses. */
export interface SpecialIds {
  readonly cls: number
  readonly sep: number
  readonly pad: number
}

/** One sequence before padding: ids and token types. */
export interface Assembled {
  readonly ids: number[]
  readonly typeIds: number[]
  readonly truncated: number
}

/** `[CLS] a [SEP] b [SEP]`, truncated to `maxLength` if asked: Hugging Face's truncation and special tokens. */
export const assemble = (
  first: ReadonlyArray<number>,
  second: ReadonlyArray<number> | undefined,
  specials: SpecialIds,
  options: Pick<EncodeOptions, "maxLength" | "truncation" | "addSpecialTokens">,
): Assembled => {
  const addSpecial = options.addSpecialTokens ?? true
  const { maxLength } = options
  const truncation = options.truncation ?? maxLength !== undefined
  const nSpecial = addSpecial ? (second === undefined ? 2 : 3) : 0
  let a = first.length
  let b = second?.length ?? 0
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 0))
    throw new RangeError(`maxLength must be a non-negative integer, not ${maxLength}`)
  const excess = a + b + nSpecial - (maxLength ?? Number.POSITIVE_INFINITY)
  if (truncation && excess > 0) {
    if (maxLength! < nSpecial)
      throw new RangeError(`maxLength ${maxLength} leaves no room for the ${nSpecial} special tokens`)
    for (let k = 0; k < excess; k++) {
      if (second === undefined || a > b) a--
      else b--
    }
  }
  const ids: number[] = []
  const typeIds: number[] = []
  if (addSpecial) ids.push(specials.cls)
  for (let i = 0; i < a; i++) ids.push(first[i]!)
  if (addSpecial) ids.push(specials.sep)
  for (let i = ids.length; i > 0; i--) typeIds.push(0)
  if (second !== undefined) {
    for (let i = 0; i < b; i++) ids.push(second[i]!)
    if (addSpecial) ids.push(specials.sep)
    for (let i = typeIds.length; i < ids.length; i++) typeIds.push(1)
  }
  return { ids, typeIds, truncated: first.length - a + (second?.length ?? 0) - b }
}

/** Pads one assembled sequence to `maxLength` when `padding` asks for it. */
export const pad = (
  seq: Assembled,
  padId: number,
  options: Pick<EncodeOptions, "maxLength" | "padding">,
): { ids: number[]; typeIds: number[]; attentionMask: number[] } => {
  const ids = [...seq.ids]
  const typeIds = [...seq.typeIds]
  const attentionMask = ids.map(() => 1)
  if (options.padding === true) {
    if (options.maxLength === undefined) throw new RangeError("padding needs maxLength")
    while (ids.length < options.maxLength) {
      ids.push(padId)
      typeIds.push(0)
      attentionMask.push(0)
    }
  }
  return { ids, typeIds, attentionMask }
}

/** Packs assembled sequences into one padded, row-major batch. */
export const pack = (
  seqs: ReadonlyArray<Assembled>,
  padId: number,
  options: Pick<BatchEncodeOptions, "maxLength" | "padding">,
): BatchEncoding => {
  let longest = 0
  let truncatedRows = 0
  for (const s of seqs) {
    if (s.ids.length > longest) longest = s.ids.length
    if (s.truncated > 0) truncatedRows++
  }
  let cols = longest
  if (options.padding === "max_length") {
    if (options.maxLength === undefined) throw new RangeError('padding "max_length" needs maxLength')
    cols = Math.max(longest, options.maxLength)
  }
  const rows = seqs.length
  const ids = new Int32Array(rows * cols).fill(padId)
  const attentionMask = new Int32Array(rows * cols)
  const tokenTypeIds = new Int32Array(rows * cols)
  const lengths = new Int32Array(rows)
  for (const [r, s] of seqs.entries()) {
    const at = r * cols
    ids.set(s.ids, at)
    tokenTypeIds.set(s.typeIds, at)
    attentionMask.fill(1, at, at + s.ids.length)
    lengths[r] = s.ids.length
  }
  return { rows, cols, ids, attentionMask, tokenTypeIds, lengths, truncatedRows }
}
