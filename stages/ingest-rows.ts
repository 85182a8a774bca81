/**
 * What the format readers share: the row they produce, the options they read, and the checks every
 * format makes of a row (UTF-8, the allowed labels), worded the same way for all.
 */
import { closest, quotedList } from "../src/suggest.js"
import { type BadUtf8, badUtf8Words } from "./ingest-decode.js"
import { type BadRows, badRowHint, type DataProblem, type Place } from "./ingest-errors.js"
import type { SampleBy } from "./ingest-text.js"

/** One example: its text, its label (none in an unlabeled corpus) and where it was read. */
export interface Row {
  readonly text: string
  readonly label: string | undefined
  readonly at: Place
}

/** What the readers need of the stage's `with:`. */
export interface ReadOptions {
  /** the fields (JSONL keys, CSV columns) whose text makes a row's text, joined by a line break */
  readonly textFields: ReadonlyArray<string>
  readonly labelField: string | undefined
  /** when given, the only labels a row may have */
  readonly labels: ReadonlyArray<string> | undefined
  readonly encoding: string
  readonly delimiter: string
  readonly sampleBy: SampleBy
  /** the longest JSONL line or CSV record (characters); longer ones are bad rows */
  readonly maxRowChars: number
}

/** `1,000,000` */
export const chars = (n: number): string => n.toLocaleString("en-US")

/** The lines of a text, for excerpts: computed once, on the first bad row. */
export const linesOf = (text: string) => {
  let lines: string[] | undefined
  return (line: number): string => {
    lines ??= text.split("\n")
    return lines[line - 1] ?? ""
  }
}

/** The first line of `[from, to]` that failed UTF-8, if any. */
export const badIn = (
  badLines: ReadonlyMap<number, BadUtf8>,
  from: number,
  to: number,
): { line: number; bad: BadUtf8 } | undefined => {
  if (badLines.size === 0) return undefined
  for (let line = from; line <= to; line++) {
    const bad = badLines.get(line)
    if (bad !== undefined) return { line, bad }
  }
  return undefined
}

/** The bad row of a line that is not UTF-8. */
export const utf8Problem = (
  file: string,
  at: { line: number; bad: BadUtf8 },
  source: string,
): DataProblem => {
  const words = badUtf8Words(at.bad)
  return {
    place: { file, line: at.line, column: at.bad.column },
    problem: words.problem,
    hint: badRowHint(words.hint),
    source,
  }
}

/**
 * Checks a row's label against `labels`, reporting one that is not listed; `true` when it may be kept.
 */
export const labelAllowed = (
  label: string | undefined,
  options: ReadOptions,
  bad: BadRows,
  problemAt: (problem: string, hint: string) => DataProblem,
): boolean => {
  if (label === undefined || options.labels === undefined || options.labels.includes(label)) return true
  const match = closest(label, options.labels)
  bad.report(
    problemAt(
      `label ${JSON.stringify(label)} is not one of ${quotedList(options.labels)}`,
      badRowHint(
        match !== undefined
          ? `Did you mean "${match}"? Fix the label, add it to \`labels\``
          : "Fix the label, add it to `labels`",
      ),
    ),
  )
  return false
}
