/**
 * The token artifact `tokenize` writes and the training stages read: per split, raw little-endian arrays
 * with no header, described by one manifest, `tokens.json`:
 *
 *   <split>.ids.bin      token ids, row-major [rows, cols]: uint16 when the vocabulary has at most 65,536
 *                        tokens, else int32; each row is [CLS] tokens [SEP] then padding ([PAD])
 *   <split>.lengths.bin  int32 [rows]: each row's length before padding (the attention mask is 1 for the
 *                        first `length` positions, 0 after)
 *   <split>.labels.bin   int32 [rows]: each row's label id (its index in `labels`); only when labeled
 *
 * Raw arrays load with one read into a typed array (or `np.fromfile(..., dtype="<u2").reshape(rows, cols)`),
 * with no parser; the manifest says everything a reader needs, and its `format` names this layout.
 */
import { readFile, writeFile } from "node:fs/promises"
import { endianness } from "node:os"
import { join } from "node:path"

/** The layout's name and version: a reader refuses any other. */
export const TOKENS_FORMAT = "pipeline-tokens/1"

/** The element type of the ids file. */
export type IdsDtype = "uint16" | "int32"

/** One split's arrays. */
export interface SplitTokens {
  readonly rows: number
  /** the row length: `max_length` with `padding: max_length`, else the longest row of the split */
  readonly cols: number
  /** file names, relative to the manifest's folder */
  readonly ids: string
  readonly lengths: string
  readonly labels: string | null
}

/** `tokens.json`. */
export interface TokensManifest {
  readonly format: typeof TOKENS_FORMAT
  readonly dtype: IdsDtype
  readonly byte_order: "little"
  readonly vocab_size: number
  readonly max_length: number
  readonly padding: "max_length" | "longest"
  /** the tokenizer the ids are of, relative to the manifest's folder */
  readonly tokenizer: string
  readonly special_ids: {
    readonly pad: number
    readonly unk: number
    readonly cls: number
    readonly sep: number
  }
  /** label names in id order; null for an unlabeled corpus */
  readonly labels: ReadonlyArray<string> | null
  readonly splits: Readonly<Record<string, SplitTokens>>
}

/** One split in memory. */
export interface SplitArrays {
  readonly rows: number
  readonly cols: number
  readonly ids: Uint16Array | Int32Array
  readonly lengths: Int32Array
  readonly labels: Int32Array | null
}

/** The ids' element type for a vocabulary of `size` tokens. */
export const idsDtype = (size: number): IdsDtype => (size <= 65536 ? "uint16" : "int32")

const LITTLE = endianness() === "LE"

/** A typed array's bytes, little-endian whatever the machine. */
const littleEndian = (a: Uint16Array | Int32Array): Uint8Array => {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
  if (LITTLE) return bytes
  const copy = Uint8Array.from(bytes)
  const w = a.BYTES_PER_ELEMENT
  for (let i = 0; i < copy.length; i += w) copy.subarray(i, i + w).reverse()
  return copy
}

/** Writes one split's files into `dir`; returns its manifest entry. */
export const writeSplit = async (dir: string, split: string, arrays: SplitArrays): Promise<SplitTokens> => {
  const entry: SplitTokens = {
    rows: arrays.rows,
    cols: arrays.cols,
    ids: `${split}.ids.bin`,
    lengths: `${split}.lengths.bin`,
    labels: arrays.labels === null ? null : `${split}.labels.bin`,
  }
  await writeFile(join(dir, entry.ids), littleEndian(arrays.ids))
  await writeFile(join(dir, entry.lengths), littleEndian(arrays.lengths))
  if (arrays.labels !== null && entry.labels !== null)
    await writeFile(join(dir, entry.labels), littleEndian(arrays.labels))
  return entry
}

/** Reads a file of little-endian elements into a fresh (aligned) typed array. */
const readArray = async <T extends Uint16Array | Int32Array>(
  path: string,
  make: (n: number) => T,
  count: number,
): Promise<T> => {
  const bytes = await readFile(path)
  const out = make(count)
  if (bytes.byteLength !== out.byteLength)
    throw new Error(`${path} has ${bytes.byteLength} bytes, the manifest says ${out.byteLength}`)
  const view = new Uint8Array(out.buffer)
  view.set(bytes)
  if (!LITTLE) {
    const w = out.BYTES_PER_ELEMENT
    for (let i = 0; i < view.length; i += w) view.subarray(i, i + w).reverse()
  }
  return out
}

/** Reads `tokens.json` in `dir`. */
export const readManifest = async (dir: string): Promise<TokensManifest> => {
  const m = JSON.parse(await readFile(join(dir, "tokens.json"), "utf8")) as TokensManifest
  if (m.format !== TOKENS_FORMAT)
    throw new Error(`${join(dir, "tokens.json")} is in format ${String(m.format)}, not ${TOKENS_FORMAT}`)
  return m
}

/** Reads one split of the artifact in `dir`. */
export const readSplit = async (
  dir: string,
  manifest: TokensManifest,
  split: string,
): Promise<SplitArrays> => {
  const s = manifest.splits[split]
  if (s === undefined) throw new Error(`${join(dir, "tokens.json")} has no split ${split}`)
  const ids =
    manifest.dtype === "uint16"
      ? await readArray(join(dir, s.ids), (n) => new Uint16Array(n), s.rows * s.cols)
      : await readArray(join(dir, s.ids), (n) => new Int32Array(n), s.rows * s.cols)
  const lengths = await readArray(join(dir, s.lengths), (n) => new Int32Array(n), s.rows)
  const labels =
    s.labels === null ? null : await readArray(join(dir, s.labels), (n) => new Int32Array(n), s.rows)
  return { rows: s.rows, cols: s.cols, ids, lengths, labels }
}
