/**
 * `ingest`: reads a dataset (JSON Lines, CSV, plain text, a folder per label, or a built-in dataset),
 * keeps its good rows, removes duplicates, and splits it into train, validation and test sets by a hash of
 * each text. Writes into its out folder:
 *
 * - `train.jsonl`, `validation.jsonl`, `test.jsonl`: one `{"text": ..., "label": ...}` per line (no
 *   `label` in an unlabeled corpus), in the order the rows were read;
 * - `labels.json`: `{"labels": [...], "counts": {"train": {"ham": 3, ...}, ...}}`, the labels in id order
 *   (`with.labels`, or sorted);
 * - `metrics.json`: rows read, bad rows skipped (the first ones by place), too short, duplicates, over
 *   `max_rows`, kept, per split.
 *
 * Bad data fails the stage with the place and what to do (`ingest-errors.ts`), unless `on_bad_row: skip`.
 */
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises"
import { extname, join, resolve } from "node:path"
import { type StageImplementation, StageInputError } from "./api.js"
import { type BuiltinDataset, builtinDatasets } from "./datasets.js"
import { readDataset } from "./ingest-datasets.js"
import { BadRows, badRowHint, type OnBadRow } from "./ingest-errors.js"
import { listFiles, readFolders, readText } from "./ingest-folders.js"
import { readCsv, readJsonl } from "./ingest-formats.js"
import type { ReadOptions, Row } from "./ingest-rows.js"
import { type Prepared, prepare, SPLITS, type SplitFractions, type SplitName } from "./ingest-split.js"
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

const FORMAT_OF_EXTENSION: Readonly<Record<string, Format>> = {
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

/** What the source holds, as the user wrote it, for messages. */
const sourceName = (o: IngestOptions): string =>
  o.source ?? o.datasets.map((d) => `dataset ${d.name}`).join(", ")

/** The rows of `source` (a file, or every file of a folder) in its format. */
const readSource = async (
  root: string,
  o: IngestOptions,
  bad: BadRows,
  progress: (done: number, total: number) => void,
): Promise<Row[]> => {
  const shown = o.source!.replace(/\/+$/, "")
  const path = resolve(root, shown)
  const st = await stat(path).catch(() => undefined)
  if (st === undefined)
    throw new StageInputError(
      `${shown}: no such file or folder\n   Check \`source\`: it is relative to the project root.`,
    )
  const files = st.isDirectory() ? (await listFiles(path)).map((rel) => `${shown}/${rel}`) : [shown]
  const format =
    o.format ?? (st.isDirectory() ? "folders" : FORMAT_OF_EXTENSION[extname(shown).toLowerCase()])
  if (format === undefined)
    throw new StageInputError(
      `${shown}: cannot tell the format from the file name\n   Set \`format\` to jsonl, csv, text or folders.`,
    )
  if (format === "folders") {
    if (!st.isDirectory())
      throw new StageInputError(
        `${shown}: format folders needs a folder with a subfolder per label\n   Point \`source\` at the folder, or set \`format\` to the file's format.`,
      )
    return readFolders(path, shown, o, bad, progress)
  }
  const delimiter = o.delimiter !== "" ? o.delimiter : extname(shown).toLowerCase() === ".tsv" ? "\t" : ","
  const rows: Row[] = []
  for (const [i, file] of files.entries()) {
    const bytes = await readFile(resolve(root, file))
    const read = format === "jsonl" ? readJsonl : format === "csv" ? readCsv : readText
    rows.push(...read(file, bytes, { ...o, delimiter }, bad))
    progress(i + 1, files.length)
  }
  return rows
}

/** The label list in id order: `with.labels`, or every label seen, sorted. */
const labelList = (o: IngestOptions, p: Prepared): string[] => {
  if (o.labels !== undefined) return [...o.labels]
  const seen = new Set<string>()
  for (const s of SPLITS) for (const r of p.splits[s]) if (r.label !== undefined) seen.add(r.label)
  return [...seen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

const jsonl = (rows: ReadonlyArray<Row>): string =>
  rows
    .map(
      (r) =>
        `${JSON.stringify(r.label === undefined ? { text: r.text } : { text: r.text, label: r.label })}\n`,
    )
    .join("")

/** Runs an ingest stage: reads, checks, deduplicates and splits its source into its out folder. */
export const run: StageImplementation = async (ctx) => {
  const o = ingestOptions(ctx.args)
  const out = ctx.outs[ctx.outs.length - 1]!
  const bad = new BadRows(o.onBadRow)
  const progress = (done: number, total: number) => ctx.progress({ step: done, total })
  const read =
    o.source !== undefined
      ? await readSource(ctx.root, o, bad, progress)
      : (await Promise.all(o.datasets.map((d) => readDataset(d, o.chunkChars, progress))))
          .flat()
          .filter((r) => {
            // the file readers check `labels` row by row; a dataset's rows are checked here
            if (o.labels === undefined || r.label === undefined || o.labels.includes(r.label)) return true
            bad.report({
              place: r.at,
              problem: `label ${JSON.stringify(r.label)} is not one of ${o.labels.map((l) => `"${l}"`).join(", ")}`,
              hint: badRowHint("Add it to `labels`"),
            })
            return false
          })
  const p = prepare(read, o)
  const kept = SPLITS.reduce((n, s) => n + p.splits[s].length, 0)
  const name = sourceName(o)
  if (kept === 0) {
    const first = bad.examples[0]
    throw new StageInputError(
      `${name}: no rows left to write (${read.length} read, ${bad.skipped} bad, ${p.tooShort} shorter than min_chars, ${p.duplicates} duplicates)\n   ${
        read.length + bad.skipped === 0
          ? "The source has no rows: check `source` and `format`."
          : read.length === 0 && first !== undefined
            ? `Every row was bad (the first: ${first.at}: ${first.problem}); check \`format\`, \`text_field\` and \`label_field\`.`
            : "Lower `min_chars`, or add data."
      }`,
    )
  }
  for (const s of SPLITS) {
    if (o.split[s] === 0 || p.splits[s].length > 0) continue
    throw new StageInputError(
      `${name}: split "${s}" got no rows (${Math.round(o.split[s] * 100)}% of ${kept} rows)\n   Add data, raise \`${s}\` in \`split\`, or set it to 0 to go without a ${s} set.`,
    )
  }
  const labels = labelList(o, p)
  const counts = (rows: ReadonlyArray<Row>) => {
    const c: Record<string, number> = Object.fromEntries(labels.map((l) => [l, 0]))
    for (const r of rows) if (r.label !== undefined) c[r.label] = (c[r.label] ?? 0) + 1
    return c
  }
  const perSplit = Object.fromEntries(SPLITS.map((s) => [s, p.splits[s].length])) as Record<SplitName, number>
  const all = counts(SPLITS.flatMap((s) => p.splits[s]))
  const metrics = {
    source: name,
    rows_read: read.length,
    ...(o.chunkChars !== undefined || p.rows !== read.length ? { rows_after_chunking: p.rows } : {}),
    bad_rows_skipped: bad.skipped,
    bad_rows: bad.examples,
    too_short: p.tooShort,
    duplicates: p.duplicates,
    conflicting_labels: p.conflictingLabels,
    ...(p.conflictExamples.length > 0 ? { conflicts: p.conflictExamples } : {}),
    over_max_rows: p.overMaxRows,
    kept,
    splits: perSplit,
    labels: all,
  }
  await rm(out, { recursive: true, force: true })
  await mkdir(out, { recursive: true })
  for (const s of SPLITS) await writeFile(join(out, `${s}.jsonl`), jsonl(p.splits[s]))
  const labelCounts = Object.fromEntries(SPLITS.map((s) => [s, counts(p.splits[s])]))
  await writeFile(join(out, "labels.json"), `${JSON.stringify({ labels, counts: labelCounts }, null, 2)}\n`)
  await writeFile(join(out, "metrics.json"), `${JSON.stringify(metrics, null, 2)}\n`)
  const labelWords = labels.length === 0 ? "" : `; ${labels.map((l) => `${l} ${all[l] ?? 0}`).join(", ")}`
  process.stdout.write(
    `kept ${kept} of ${read.length} rows (${p.duplicates} duplicates, ${bad.skipped} bad rows skipped, ${p.tooShort} too short${p.overMaxRows > 0 ? `, ${p.overMaxRows} over max_rows` : ""}): ` +
      `train ${perSplit.train}, validation ${perSplit.validation}, test ${perSplit.test}${labelWords}\n`,
  )
  const first = bad.examples[0]
  if (first !== undefined) process.stdout.write(`first bad row skipped: ${first.at}: ${first.problem}\n`)
}
