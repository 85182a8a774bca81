/**
 * Bad data, reported the way the pipeline's own errors are: the place (`data/reviews.csv:17:9`), what is
 * wrong, the source line with a `~` under the offending spot, and one sentence on what to do. The data
 * stages (`ingest`, `tokenize`) throw these as `StageInputError`s, which fail the stage (exit 1) and are
 * printed without a stack. `BadRows` applies `on_bad_row`: fail at the first bad row, or skip and count.
 */
import { StageInputError } from "./api.js"

/** A place in a data file: the file as the user knows it (project-relative), 1-based line and column. */
export interface Place {
  readonly file: string
  readonly line?: number
  /** 1-based, in UTF-16 units of the line (as editors count) */
  readonly column?: number
}

/** `data/reviews.csv:17:9`, `data/reviews.csv:17`, or `data/reviews.csv`. */
export const placeText = (p: Place): string =>
  p.line === undefined ? p.file : `${p.file}:${p.line}${p.column === undefined ? "" : `:${p.column}`}`

/** One problem with the data, where it is, and what to do about it. */
export interface DataProblem {
  readonly place: Place
  /** what is wrong, without a final full stop */
  readonly problem: string
  /** one sentence: what to do */
  readonly hint: string
  /** the text of the line at `place.line`, for the excerpt */
  readonly source?: string
  /** how many characters the marker underlines; default 1 */
  readonly span?: number
}

const GUTTER = 5
const INDENT = "   "
/** The widest stretch of a source line an excerpt shows, in terminal columns. */
const EXCERPT_WIDTH = 100

/** Terminal columns of a code point: 2 for East Asian wide and fullwidth characters, else 1. */
const width = (cp: number): number =>
  (cp >= 0x1100 && cp <= 0x115f) ||
  (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) ||
  (cp >= 0xac00 && cp <= 0xd7a3) ||
  (cp >= 0xf900 && cp <= 0xfaff) ||
  (cp >= 0xfe30 && cp <= 0xfe4f) ||
  (cp >= 0xff00 && cp <= 0xff60) ||
  (cp >= 0xffe0 && cp <= 0xffe6) ||
  (cp >= 0x1f300 && cp <= 0x1f64f) ||
  (cp >= 0x1f900 && cp <= 0x1f9ff) ||
  (cp >= 0x20000 && cp <= 0x3fffd)
    ? 2
    : 1

/** Control characters would break the excerpt's layout: show them as the replacement character. */
const printable = (ch: string): string => (ch === "\t" ? ch : /\p{Cc}/u.test(ch) ? "\ufffd" : ch)

/**
 * The source line and the marker line under it. A long line is cut to a window around the column, marked
 * with `…`; wide characters (CJK) count two columns, so the marker stands under the right character.
 */
export const excerpt = (line: number, text: string, column: number | undefined, span = 1): string[] => {
  const chars = [...text.replace(/\r$/, "")].map(printable)
  // the column counts UTF-16 units; find the code point it falls on
  let at = chars.length
  if (column !== undefined) {
    let units = 0
    for (const [i, ch] of chars.entries()) {
      if (units >= column - 1) {
        at = i
        break
      }
      units += ch.length
    }
  }
  let from = 0
  let to = chars.length
  const cols = (a: number, b: number) =>
    chars.slice(a, b).reduce((n, ch) => n + (ch === "\t" ? 1 : width(ch.codePointAt(0)!)), 0)
  if (cols(0, to) > EXCERPT_WIDTH) {
    from = column === undefined ? 0 : Math.max(0, at - 20)
    while (from > 0 && cols(from, at) < 20) from--
    to = from
    while (to < chars.length && cols(from, to + 1) <= EXCERPT_WIDTH) to++
  }
  const head = from > 0 ? "…" : ""
  const tail = to < chars.length ? "…" : ""
  const out = [`${String(line).padStart(GUTTER)} | ${head}${chars.slice(from, to).join("")}${tail}`.trimEnd()]
  if (column !== undefined) {
    const padding = chars
      .slice(from, Math.min(at, to))
      .map((ch) => (ch === "\t" ? "\t" : " ".repeat(width(ch.codePointAt(0)!))))
      .join("")
    const under = Math.max(1, cols(at, Math.min(at + span, to)))
    out.push(`${" ".repeat(GUTTER)} | ${head === "" ? "" : " "}${padding}${"~".repeat(under)}`)
  }
  return out
}

/** The whole message: place and problem, the excerpt when there is a source line, and the hint. */
export const renderProblem = (p: DataProblem): string => {
  const lines = [`${placeText(p.place)}: ${p.problem}`]
  if (p.source !== undefined && p.place.line !== undefined)
    lines.push(...excerpt(p.place.line, p.source, p.place.column, p.span))
  if (p.hint !== "") lines.push(`${INDENT}${p.hint}`)
  return lines.join("\n")
}

/** The error that fails the stage with `p` as its message. */
export const dataError = (p: DataProblem): StageInputError => new StageInputError(renderProblem(p))

/** What `on_bad_row` says to do with a bad row. */
export type OnBadRow = "fail" | "skip"

/** The hint for a bad row: how to fix it (no full stop), then how to go on without it. */
export const badRowHint = (fix: string): string =>
  `${fix}, or set \`on_bad_row: skip\` to leave such rows out (metrics.json counts them).`

/** How many skipped rows `metrics.json` lists by place. */
export const LISTED_BAD_ROWS = 10

/** The bad rows of one ingest: the first one fails it, or each one is counted and the first few listed. */
export class BadRows {
  private count = 0
  private readonly listed: Array<{ at: string; problem: string }> = []

  constructor(private readonly policy: OnBadRow) {}

  /** A bad row: throws under `fail`; under `skip`, counts it. */
  report(p: DataProblem): void {
    if (this.policy === "fail") throw dataError(p)
    this.count++
    if (this.listed.length < LISTED_BAD_ROWS) this.listed.push({ at: placeText(p.place), problem: p.problem })
  }

  /** How many rows were skipped. */
  get skipped(): number {
    return this.count
  }

  /** The first skipped rows, by place, for metrics.json. */
  get examples(): ReadonlyArray<{ at: string; problem: string }> {
    return this.listed
  }
}
