/**
 * From the rows read to the rows written: chunking, the minimum length, deduplication, the `max_rows` cap
 * and the train/validation/test split. Pure, so it is tested on its own.
 *
 * The split is decided per row by a hash of its normalised text (NFC, whitespace runs as one space,
 * trimmed) and the seed: a row lands in the same split whatever other rows there are, so adding data never
 * moves an example from train to test, and two copies of a text can never straddle train and test, even
 * with `dedupe: false`. `max_rows` keeps the rows with the smallest values of a second, independent hash:
 * a deterministic sample that does not favour any split, and that grows by adding rows when the cap grows.
 */
import { createHash } from "node:crypto"
import { placeText } from "./ingest-errors.js"
import type { Row } from "./ingest-rows.js"
import { chunk } from "./ingest-text.js"

/** The three splits, in the order they are written. */
export const SPLITS = ["train", "validation", "test"] as const
export type SplitName = (typeof SPLITS)[number]

/** Fractions of the rows per split; they add up to 1. */
export type SplitFractions = Readonly<Record<SplitName, number>>

/** What shapes the rows kept. */
export interface PrepareOptions {
  readonly chunkChars: number | undefined
  readonly minChars: number
  readonly dedupe: boolean
  readonly maxRows: number | undefined
  readonly split: SplitFractions
  readonly seed: number
}

/** The rows kept, by split, in the order they were read, and what happened to the others. */
export interface Prepared {
  readonly splits: Readonly<Record<SplitName, ReadonlyArray<Row>>>
  /** rows after chunking (equal to the rows read when nothing was chunked) */
  readonly rows: number
  readonly tooShort: number
  readonly duplicates: number
  /** duplicates whose label differs from the first copy's (the first copy is kept) */
  readonly conflictingLabels: number
  readonly conflictExamples: ReadonlyArray<{ at: string; first: string; labels: [string, string] }>
  readonly overMaxRows: number
}

/** The text a row is compared and hashed by: NFC, whitespace runs as one space, trimmed. */
export const normalizeKey = (text: string): string => text.normalize("NFC").replace(/\s+/gu, " ").trim()

/** A number in [0, 1) from `purpose`, the seed and a text: the first 48 bits of their SHA-256. */
export const unitHash = (purpose: string, seed: number, key: string): number =>
  createHash("sha256").update(`${purpose}\0${seed}\0${key}`).digest().readUIntBE(0, 6) / 2 ** 48

/** The split a hash value falls in: train below `train`, validation below `train + validation`, else test. */
export const splitOf = (u: number, f: SplitFractions): SplitName =>
  u < f.train ? "train" : u < f.train + f.validation ? "validation" : "test"

const codePoints = (s: string): number => {
  let n = 0
  for (const _ of s) n++
  return n
}

/** Chunks, filters, deduplicates, caps and splits `rows`. */
export const prepare = (rows: ReadonlyArray<Row>, o: PrepareOptions): Prepared => {
  const chunked =
    o.chunkChars === undefined
      ? rows
      : rows.flatMap((r) => chunk(r.text, o.chunkChars!).map((text) => ({ ...r, text })))
  let tooShort = 0
  let duplicates = 0
  let conflictingLabels = 0
  const conflictExamples: Array<{ at: string; first: string; labels: [string, string] }> = []
  const firstOf = new Map<string, Row>()
  const kept: Array<{ row: Row; key: string }> = []
  for (const row of chunked) {
    // UTF-16 length >= code points >= half of it: count code points only when it can matter
    const short =
      row.text.length < o.minChars || (row.text.length < 2 * o.minChars && codePoints(row.text) < o.minChars)
    if (short) {
      tooShort++
      continue
    }
    const key = normalizeKey(row.text)
    if (o.dedupe) {
      const first = firstOf.get(key)
      if (first !== undefined) {
        duplicates++
        if (first.label !== row.label) {
          conflictingLabels++
          if (conflictExamples.length < 10)
            conflictExamples.push({
              at: placeText(row.at),
              first: placeText(first.at),
              labels: [first.label ?? "", row.label ?? ""],
            })
        }
        continue
      }
      firstOf.set(key, row)
    }
    kept.push({ row, key })
  }
  let capped = kept
  if (o.maxRows !== undefined && kept.length > o.maxRows) {
    const order = kept.map((k, i) => ({ i, u: unitHash("sample", o.seed, k.key) }))
    order.sort((a, b) => a.u - b.u || a.i - b.i)
    const chosen = new Set(order.slice(0, o.maxRows).map((x) => x.i))
    capped = kept.filter((_, i) => chosen.has(i))
  }
  const splits: Record<SplitName, Row[]> = { train: [], validation: [], test: [] }
  for (const { row, key } of capped) splits[splitOf(unitHash("split", o.seed, key), o.split)].push(row)
  return {
    splits,
    rows: chunked.length,
    tooShort,
    duplicates,
    conflictingLabels,
    conflictExamples,
    overMaxRows: kept.length - capped.length,
  }
}
