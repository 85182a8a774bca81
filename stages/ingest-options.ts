/**
 * `with:` of an ingest stage, typed, with the rules its schema cannot express checked (both `source` and
 * `dataset`, split fractions that do not add up to 1, ...). A module of its own, light, so the pipeline
 * loader can run the same checks before anything runs (the kind's `check` in stages/registry.ts) and report
 * them located, with exit code 2.
 */
import { StageInputError } from "./api.js"
import { type BuiltinDataset, builtinDatasets } from "./datasets.js"
import type { OnBadRow } from "./ingest-errors.js"
import type { ReadOptions } from "./ingest-rows.js"
import type { SplitFractions } from "./ingest-split.js"
import type { SampleBy } from "./ingest-text.js"

/** The file formats of `with.format`. */
export type Format = "jsonl" | "csv" | "text" | "folders"

/** `with:` of an ingest stage, typed, with what the schema cannot check checked. */
export interface IngestOptions extends ReadOptions {
  readonly source: string | undefined
  readonly format: Format | undefined
  readonly datasets: ReadonlyArray<BuiltinDataset>
  readonly chunkChars: number | undefined
  readonly minChars: number
  readonly dedupe: boolean
  readonly maxRows: number | undefined
  readonly split: SplitFractions
  readonly seed: number
  readonly onBadRow: OnBadRow
}

export const FORMAT_OF_EXTENSION: Readonly<Record<string, Format>> = {
  ".jsonl": "jsonl",
  ".ndjson": "jsonl",
  ".csv": "csv",
  ".tsv": "csv",
  ".txt": "text",
  ".text": "text",
}

const optionError = (problem: string, hint: string) => new StageInputError(`with: ${problem}\n   ${hint}`)

const list = (v: unknown): string[] | undefined =>
  v === undefined ? undefined : Array.isArray(v) ? v.map(String) : [String(v)]

/** Reads `with:` (already checked against the schema, defaults filled in). */
export const ingestOptions = (args: Readonly<Record<string, unknown>>): IngestOptions => {
  const source = typeof args.source === "string" ? args.source : undefined
  const datasets = (list(args.dataset) ?? []).map((name) => builtinDatasets.get(name)!)
  if (source !== undefined && datasets.length > 0)
    throw optionError(
      'both "source" and "dataset" are set',
      "A stage reads either files (`source`) or built-in datasets (`dataset`): remove one of them.",
    )
  const format = args.format as Format | undefined
  if (datasets.length > 0) {
    for (const key of ["format", "text_field", "label_field", "delimiter"] as const)
      if (args[key] !== undefined && !(key === "text_field" && args[key] === "text"))
        throw optionError(
          `"${key}" is set, but a built-in dataset is read as it is`,
          `Remove "${key}": it applies to files read from \`source\`.`,
        )
    if (new Set(datasets.map((d) => d.labeled)).size > 1)
      throw optionError(
        `the datasets ${datasets.map((d) => d.name).join(", ")} mix labeled and unlabeled rows`,
        "Ingest labeled and unlabeled datasets in separate stages.",
      )
  }
  const split = (args.split ?? { train: 0.8, validation: 0.1, test: 0.1 }) as Partial<SplitFractions>
  const fractions: SplitFractions = {
    train: split.train ?? 0,
    validation: split.validation ?? 0,
    test: split.test ?? 0,
  }
  const sum = fractions.train + fractions.validation + fractions.test
  if (Math.abs(sum - 1) > 1e-9)
    throw optionError(
      `the split fractions add up to ${Number(sum.toFixed(6))}, not 1`,
      "Make train, validation and test add up to 1 (a split left out counts as 0).",
    )
  const labels = list(args.labels)
  const labelField = typeof args.label_field === "string" ? args.label_field : undefined
  if (
    labels !== undefined &&
    labelField === undefined &&
    format !== "folders" &&
    !datasets.some((d) => d.labeled)
  )
    throw optionError(
      '"labels" is set, but the rows have no labels',
      "Set `label_field` to the field that holds the labels, or remove `labels`.",
    )
  if (labelField !== undefined && (format === "text" || format === "folders"))
    throw optionError(
      `"label_field" is set, but ${format === "text" ? "plain text has no fields" : "a folder-per-label source takes its labels from folder names"}`,
      "Remove `label_field`.",
    )
  return {
    source,
    format,
    datasets,
    textFields: list(args.text_field) ?? ["text"],
    labelField,
    labels,
    encoding: typeof args.encoding === "string" ? args.encoding : "utf-8",
    delimiter: typeof args.delimiter === "string" ? args.delimiter : "",
    sampleBy: (args.sample_by as SampleBy | undefined) ?? (format === "folders" ? "document" : "line"),
    maxRowChars: typeof args.max_row_chars === "number" ? args.max_row_chars : 1_000_000,
    chunkChars: typeof args.chunk_chars === "number" ? args.chunk_chars : undefined,
    minChars: typeof args.min_chars === "number" ? args.min_chars : 1,
    dedupe: args.dedupe !== false,
    maxRows: typeof args.max_rows === "number" ? args.max_rows : undefined,
    split: fractions,
    seed: typeof args.seed === "number" ? args.seed : 0,
    onBadRow: args.on_bad_row === "skip" ? "skip" : "fail",
  }
}
