/**
 * Readers of plain text: a text file cut into samples (`sample_by`), and a folder-per-label tree whose
 * subfolder names are the labels.
 */
import { readdir, readFile } from "node:fs/promises"
import { join, relative, sep } from "node:path"
import { decodeFile } from "./ingest-decode.js"
import type { BadRows, DataProblem } from "./ingest-errors.js"
import { badRowHint } from "./ingest-errors.js"
import {
  badIn,
  chars,
  labelAllowed,
  linesOf,
  type ReadOptions,
  type Row,
  utf8Problem,
} from "./ingest-rows.js"
import { samples } from "./ingest-text.js"

/** The samples of a plain-text file as unlabeled rows (or rows of `label`, in a label folder). */
export const readText = (
  file: string,
  buf: Uint8Array,
  options: ReadOptions,
  bad: BadRows,
  label?: string,
): Row[] => {
  const { text, badLines } = decodeFile(buf, options.encoding)
  const source = linesOf(text)
  const rows: Row[] = []
  for (const s of samples(text, options.sampleBy)) {
    const notUtf8 = badIn(badLines, s.line, s.endLine)
    if (notUtf8 !== undefined) {
      bad.report(utf8Problem(file, notUtf8, source(notUtf8.line)))
      continue
    }
    if (options.sampleBy === "line" && s.text.length > options.maxRowChars) {
      bad.report({
        place: { file, line: s.line },
        problem: `the line is ${chars(s.text.length)} characters long, more than max_row_chars (${chars(options.maxRowChars)})`,
        hint: badRowHint("Set `chunk_chars` to cut long lines into chunks, raise `max_row_chars`"),
        source: source(s.line),
      })
      continue
    }
    rows.push({
      text: s.text,
      label,
      at: options.sampleBy === "document" ? { file } : { file, line: s.line },
    })
  }
  return rows
}

/** The files under `dir`, recursively, as sorted relative paths with `/`; hidden files and folders left out. */
export const listFiles = async (dir: string): Promise<string[]> => {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true })
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join("/"))
    .filter((rel) => !rel.split("/").some((part) => part.startsWith(".")))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

/**
 * The rows of a folder-per-label tree: every file under `dir/<label>/` holds examples of `<label>` (one
 * per file by default, or per `sample_by`). A file directly in `dir` has no label: a bad row.
 */
export const readFolders = async (
  dir: string,
  shown: string,
  options: ReadOptions,
  bad: BadRows,
  progress: (done: number, total: number) => void,
): Promise<Row[]> => {
  const files = await listFiles(dir)
  const rows: Row[] = []
  for (const [i, rel] of files.entries()) {
    const slash = rel.indexOf("/")
    const file = `${shown}/${rel}`
    if (slash < 0) {
      bad.report({
        place: { file },
        problem: "the file is not in a label folder",
        hint: badRowHint(
          `Move it into the folder of its label (${shown}/<label>/), or out of the source folder`,
        ),
      })
      continue
    }
    const label = rel.slice(0, slash)
    const problemAt = (problem: string, hint: string): DataProblem => ({ place: { file }, problem, hint })
    if (!labelAllowed(label, options, bad, problemAt)) continue
    rows.push(...readText(file, await readFile(join(dir, rel)), options, bad, label))
    progress(i + 1, files.length)
  }
  return rows
}
