/**
 * Readers of the structured formats `ingest` takes: JSON Lines and CSV (with a header). Each turns a
 * file's bytes into rows `{text, label}` that know where they came from, and hands every row it cannot
 * read to `BadRows` with its place, the problem and what to do.
 */
import { closest, quotedList } from "../src/suggest.js"
import { parseCsv } from "./ingest-csv.js"
import { badUtf8Words, decodeFile } from "./ingest-decode.js"
import { type BadRows, badRowHint, type DataProblem, dataError } from "./ingest-errors.js"
import {
  badIn,
  chars,
  labelAllowed,
  linesOf,
  type ReadOptions,
  type Row,
  utf8Problem,
} from "./ingest-rows.js"

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v)

const jsonKind = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "a list" : typeof v === "string" ? "a string" : `a ${typeof v}`

/** A label as text: strings trimmed, numbers and booleans written out; anything else is no label. */
const labelText = (v: unknown): string | undefined =>
  typeof v === "string" ? v.trim() : typeof v === "number" || typeof v === "boolean" ? String(v) : undefined

/** `V8's message in JSON at position 12 (line 1 column 13)` -> the message and a 1-based column. */
const jsonError = (e: unknown, line: string): { message: string; column: number | undefined } => {
  const text = e instanceof Error ? e.message : String(e)
  const at = / in JSON at position (\d+)/.exec(text)
  if (at !== null) return { message: text.slice(0, at.index), column: Number(at[1]) + 1 }
  if (text.startsWith("Unexpected end of JSON input")) return { message: text, column: line.length + 1 }
  // `Unexpected token 'x', "..." is not valid JSON`: drop the quoted copy of the line
  return { message: text.replace(/, ".*" is not valid JSON$/s, ""), column: undefined }
}

/** The rows of a JSON Lines file; blank lines are skipped. */
export const readJsonl = (file: string, buf: Uint8Array, options: ReadOptions, bad: BadRows): Row[] => {
  const { text, badLines } = decodeFile(buf, options.encoding)
  const rows: Row[] = []
  const lines = text.split("\n")
  for (const [i, withCr] of lines.entries()) {
    const line = i + 1
    const raw = withCr.endsWith("\r") ? withCr.slice(0, -1) : withCr
    if (raw.trim() === "") continue
    const problemAt = (problem: string, hint: string, column?: number): DataProblem => ({
      place: column === undefined ? { file, line } : { file, line, column },
      problem,
      hint,
      source: raw,
    })
    const notUtf8 = badLines.get(line)
    if (notUtf8 !== undefined) {
      bad.report(utf8Problem(file, { line, bad: notUtf8 }, raw))
      continue
    }
    if (raw.length > options.maxRowChars) {
      bad.report(
        problemAt(
          `the line is ${chars(raw.length)} characters long, more than max_row_chars (${chars(options.maxRowChars)})`,
          badRowHint("Write one JSON object per line, or raise `max_row_chars` if rows are really this long"),
        ),
      )
      continue
    }
    let value: unknown
    try {
      value = JSON.parse(raw)
    } catch (e) {
      const { message, column } = jsonError(e, raw)
      const array = line === 1 && raw.trim().startsWith("[")
      bad.report(
        problemAt(
          `invalid JSON: ${message}`,
          array
            ? "This looks like a JSON array: JSON Lines has one object per line (convert with `jq -c '.[]' data.json > data.jsonl`)."
            : badRowHint("Fix the line"),
          column,
        ),
      )
      continue
    }
    if (!isObject(value)) {
      bad.report(
        problemAt(
          `the line is ${jsonKind(value)}, not a JSON object`,
          Array.isArray(value)
            ? "JSON Lines has one object per line, not an array (convert with `jq -c '.[]' data.json > data.jsonl`)."
            : badRowHint('Write one JSON object per line, like {"text": "...", "label": "..."}'),
        ),
      )
      continue
    }
    const fields = Object.keys(value)
    const textParts: string[] = []
    let ok = true
    for (const name of options.textFields) {
      const v = value[name]
      if (typeof v === "string") {
        textParts.push(v)
        continue
      }
      const match = v === undefined ? closest(name, fields) : undefined
      bad.report(
        problemAt(
          v === undefined
            ? `no ${JSON.stringify(name)} field (the line has ${fields.length === 0 ? "no fields" : quotedList(fields)})`
            : `${JSON.stringify(name)} is ${jsonKind(v)}, not a string`,
          badRowHint(
            match !== undefined
              ? `Did you mean "${match}"? Set \`text_field\` to the field that holds the text`
              : v === undefined
                ? "Set `text_field` to the field that holds the text"
                : "Make the text a string",
          ),
        ),
      )
      ok = false
      break
    }
    if (!ok) continue
    let label: string | undefined
    if (options.labelField !== undefined) {
      const v = value[options.labelField]
      label = labelText(v)
      if (label === undefined || label === "") {
        bad.report(
          problemAt(
            v === undefined
              ? `no ${JSON.stringify(options.labelField)} field: the row has no label`
              : `${JSON.stringify(options.labelField)} is ${v === "" ? "empty" : jsonKind(v)}: the row has no label`,
            badRowHint("Give the row a label, or set `label_field` to the field that holds labels"),
          ),
        )
        continue
      }
      if (!labelAllowed(label, options, bad, problemAt)) continue
    }
    rows.push({ text: textParts.join("\n").trim(), label, at: { file, line } })
  }
  return rows
}

/** The rows of a CSV file with a header line. */
export const readCsv = (file: string, buf: Uint8Array, options: ReadOptions, bad: BadRows): Row[] => {
  const { text, badLines } = decodeFile(buf, options.encoding)
  const source = linesOf(text)
  const rows: Row[] = []
  let header: ReadonlyArray<string> | undefined
  let textColumns: number[] = []
  let labelColumn = -1
  const delimiterName = options.delimiter === "\t" ? "a tab" : `"${options.delimiter}"`
  for (const item of parseCsv(text, options.delimiter, options.maxRowChars)) {
    if (item.kind === "problem") {
      const problem: DataProblem = {
        place: { file, line: item.line, column: item.column },
        problem: `invalid CSV: ${item.problem}`,
        hint: item.fatal ? item.hint : badRowHint(item.hint),
        source: source(item.line),
      }
      if (item.fatal || header === undefined) throw dataError(problem)
      bad.report(problem)
      continue
    }
    const notUtf8 = badIn(badLines, item.line, item.endLine)
    if (header === undefined) {
      if (notUtf8 !== undefined) {
        const p = utf8Problem(file, notUtf8, source(notUtf8.line))
        throw dataError({ ...p, hint: `${badUtf8Words(notUtf8.bad).hint}.` })
      }
      header = item.fields.map((f) => f.trim())
      const columns = header
      const find = (name: string, key: "text_field" | "label_field"): number => {
        const at = columns.indexOf(name)
        if (at >= 0) return at
        const match = closest(name, columns)
        throw dataError({
          place: { file, line: item.line },
          problem: `the header has no column ${JSON.stringify(name)} (it has ${quotedList(columns)})`,
          hint:
            match !== undefined
              ? `Did you mean "${match}"? Set \`${key}\` to one of the header's columns.`
              : `Set \`${key}\` to one of the header's columns (the first line is the header).`,
          source: source(item.line),
        })
      }
      textColumns = options.textFields.map((f) => find(f, "text_field"))
      labelColumn = options.labelField === undefined ? -1 : find(options.labelField, "label_field")
      continue
    }
    const problemAt = (problem: string, hint: string, column?: number, span?: number): DataProblem => ({
      place: column === undefined ? { file, line: item.line } : { file, line: item.line, column },
      problem,
      hint,
      source: source(item.line),
      ...(span === undefined ? {} : { span }),
    })
    if (notUtf8 !== undefined) {
      bad.report(utf8Problem(file, notUtf8, source(notUtf8.line)))
      continue
    }
    if (item.length > options.maxRowChars) {
      bad.report(
        problemAt(
          `the row is ${chars(item.length)} characters long, more than max_row_chars (${chars(options.maxRowChars)})`,
          badRowHint("Check the row, or raise `max_row_chars` if rows are really this long"),
        ),
      )
      continue
    }
    if (item.fields.length !== header.length) {
      const extra = item.starts[header.length]
      bad.report(
        problemAt(
          `row has ${item.fields.length} field${item.fields.length === 1 ? "" : "s"}, the header has ${header.length}`,
          badRowHint(
            item.fields.length > header.length
              ? `Quote a field that contains ${delimiterName} ("a${options.delimiter === "\t" ? "\t" : options.delimiter} b"), fix the row`
              : "Fill in the missing fields",
          ),
          extra !== undefined && extra.line === item.line ? extra.column : undefined,
          extra !== undefined ? source(item.line).length - extra.column + 1 : undefined,
        ),
      )
      continue
    }
    let label: string | undefined
    if (labelColumn >= 0) {
      label = item.fields[labelColumn]!.trim()
      const start = item.starts[labelColumn]!
      if (label === "") {
        bad.report(
          problemAt(
            `the ${JSON.stringify(options.labelField)} field is empty: the row has no label`,
            badRowHint("Give the row a label"),
            start.line === item.line ? start.column : undefined,
          ),
        )
        continue
      }
      const at = start.line === item.line ? start.column : undefined
      if (!labelAllowed(label, options, bad, (p, h) => problemAt(p, h, at, item.fields[labelColumn]!.length)))
        continue
    }
    const text = textColumns
      .map((c) => item.fields[c]!)
      .join("\n")
      .trim()
    rows.push({ text, label, at: { file, line: item.line } })
  }
  return rows
}
