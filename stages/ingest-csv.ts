/**
 * CSV records with their places. RFC 4180: fields separated by the delimiter, records by LF or CRLF; a
 * field in double quotes may hold delimiters, line breaks and doubled quotes (`""`). Like pandas and
 * csv-parse with `skip_empty_lines`, blank lines are not records; like most readers, a quote inside an
 * unquoted field is kept as a character.
 *
 * Why not a package (csv-parse is the well-kept one): every record must come with the line and column of
 * each of its fields, so that a bad row is reported as `data.csv:17:12` with a marker under the field, and
 * a record's lines must be known to tie it to the lines that failed UTF-8 (`ingest-decode.ts`). csv-parse
 * reports line numbers but not field columns, and its errors are its own sentences; the grammar is small
 * enough that owning it costs less than translating around it.
 */

/** Where a field starts: 1-based line and column (UTF-16 units). */
export interface FieldStart {
  readonly line: number
  readonly column: number
}

/** One record. */
export interface CsvRecord {
  readonly kind: "record"
  readonly fields: ReadonlyArray<string>
  /** where each field starts */
  readonly starts: ReadonlyArray<FieldStart>
  /** the first and last line the record spans */
  readonly line: number
  readonly endLine: number
  /** its length in characters, line break excluded */
  readonly length: number
}

/** A record that cannot be read; parsing goes on at the next line unless `fatal`. */
export interface CsvProblem {
  readonly kind: "problem"
  readonly line: number
  readonly column: number
  readonly problem: string
  readonly hint: string
  /** the rest of the file cannot be read reliably (a quote that is never closed) */
  readonly fatal: boolean
}

const QUOTE = 0x22
const LF = 0x0a
const CR = 0x0d

/**
 * The records of `text`, in order. A quoted field that runs past `maxChars` (or to the end of the file)
 * is a fatal problem: a missing closing quote would otherwise swallow every row after it.
 */
export function* parseCsv(
  text: string,
  delimiter: string,
  maxChars: number,
): Generator<CsvRecord | CsvProblem, void, undefined> {
  const d = delimiter.charCodeAt(0)
  const n = text.length
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0
  let line = 1
  let lineStart = 0
  const atLineEnd = (i: number) => {
    const c = text.charCodeAt(i)
    return c === LF || (c === CR && text.charCodeAt(i + 1) === LF)
  }
  const skipLineBreak = () => {
    if (text.charCodeAt(pos) === CR) pos++
    if (text.charCodeAt(pos) === LF) pos++
    line++
    lineStart = pos
  }
  while (pos < n) {
    if (atLineEnd(pos)) {
      skipLineBreak()
      continue
    }
    const startLine = line
    const startPos = pos
    const fields: string[] = []
    const starts: FieldStart[] = []
    let problem: CsvProblem | undefined
    for (;;) {
      const column = pos - lineStart + 1
      starts.push({ line, column })
      if (text.charCodeAt(pos) === QUOTE) {
        let value = ""
        pos++
        for (;;) {
          const q = text.indexOf('"', pos)
          if (q < 0 || q - startPos > maxChars) {
            const where = { line: starts.at(-1)!.line, column }
            return yield {
              kind: "problem",
              ...where,
              fatal: true,
              problem:
                q < 0
                  ? "the quoted field that starts here is never closed"
                  : `the quoted field that starts here is still open after ${maxChars.toLocaleString("en-US")} characters`,
              hint: 'Add the missing closing quote; inside a quoted field, write a quote as two quotes ("").',
            }
          }
          for (let i = text.indexOf("\n", pos); i >= 0 && i < q; i = text.indexOf("\n", i + 1)) {
            line++
            lineStart = i + 1
          }
          value += text.slice(pos, q)
          if (text.charCodeAt(q + 1) === QUOTE) {
            value += '"'
            pos = q + 2
            continue
          }
          pos = q + 1
          break
        }
        fields.push(value)
        if (pos < n && text.charCodeAt(pos) === d) {
          pos++
          continue
        }
        if (pos >= n || atLineEnd(pos)) break
        problem = {
          kind: "problem",
          line,
          column: pos - lineStart + 1,
          fatal: false,
          problem: `unexpected ${JSON.stringify(text[pos])} after the closing quote of field ${fields.length}`,
          hint: 'Inside a quoted field, write a quote as two quotes ("")',
        }
        while (pos < n && !atLineEnd(pos)) pos++
        break
      }
      let i = pos
      while (i < n) {
        const c = text.charCodeAt(i)
        if (c === d || c === LF || (c === CR && text.charCodeAt(i + 1) === LF)) break
        i++
      }
      fields.push(text.slice(pos, i))
      pos = i
      if (pos < n && text.charCodeAt(pos) === d) {
        pos++
        continue
      }
      break
    }
    const length = pos - startPos
    const endLine = line
    if (pos < n) skipLineBreak()
    yield problem ?? { kind: "record", fields, starts, line: startLine, endLine, length }
  }
}
