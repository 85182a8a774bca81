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

export { type Format, type IngestOptions, ingestOptions } from "./ingest-options.js"

import { readDataset } from "./ingest-datasets.js"
import { BadRows, badRowHint } from "./ingest-errors.js"
import { listFiles, readFolders, readText } from "./ingest-folders.js"
import { readCsv, readJsonl } from "./ingest-formats.js"
import { FORMAT_OF_EXTENSION, type IngestOptions, ingestOptions } from "./ingest-options.js"
import type { Row } from "./ingest-rows.js"
import { type Prepared, prepare, SPLITS, type SplitName } from "./ingest-split.js"

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
