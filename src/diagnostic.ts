/**
 * Renders located diagnostics the way compilers do:
 *
 *     pipeline.yaml:12:5: unknown key "cmdd" in stage "train"
 *        12 |     cmdd: echo hi
 *           |     ~~~~
 *        Did you mean "cmd"?
 *
 * The exact text is golden-tested (test/errors-golden.test.ts).
 */
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import { type Diagnostic, type PipelineInvalid, unreachable } from "./errors.js"
import { originOf } from "./origins.js"

/** How to find the source files of diagnostics that were not made by the loader in this process. */
export interface RenderOptions {
  /** the directory relative diagnostic paths are relative to; default: the process's working directory */
  readonly cwd?: string
}

const GUTTER = 5
const INDENT = "   "

const sourceLines = (
  d: Diagnostic,
  options: RenderOptions,
  cache: Map<string, ReadonlyArray<string> | null>,
) => {
  const path = originOf(d) ?? (options.cwd === undefined ? d.file : resolve(options.cwd, d.file))
  let lines = cache.get(path)
  if (lines === undefined) {
    try {
      lines = readFileSync(path, "utf8").split(/\r?\n/)
    } catch {
      // the file may have gone since it was loaded: the header and the hint still say what is wrong
      lines = null
    }
    cache.set(path, lines)
  }
  return lines
}

/** Source lines longer than this are shown as an excerpt around the span. */
const MAX_LINE = 200
/** Characters shown on each side of the span in an excerpt, and at most this much of the span itself. */
const CONTEXT = 40
const MAX_SPAN = 80
const CUT = "..."

/**
 * The part of a source line to show, with the span's new start and end in it: a huge line (a minified JSON
 * file, a pasted blob) is cut around the span, and control characters, which could drive the terminal, are
 * shown as "?" (one character for one, so the marker still lines up).
 */
const excerpt = (line: string, start: number, end: number) => {
  const safe = line.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "?")
  if (safe.length <= MAX_LINE) return { text: safe, start, end }
  const from = Math.max(0, start - CONTEXT)
  const spanEnd = Math.min(end, start + MAX_SPAN)
  const to = Math.min(safe.length, Math.max(spanEnd, start + 1) + CONTEXT)
  const head = from > 0 ? CUT : ""
  const text = `${head}${safe.slice(from, to)}${to < safe.length ? CUT : ""}`
  return { text, start: start - from + head.length, end: spanEnd - from + head.length }
}

const renderOne = (
  d: Diagnostic,
  options: RenderOptions,
  cache: Map<string, ReadonlyArray<string> | null>,
) => {
  const out = [`${d.file}:${d.line}:${d.column}: ${d.message}`]
  const line = sourceLines(d, options, cache)?.[d.line - 1]
  if (line !== undefined) {
    const { text, start, end } = excerpt(
      line,
      Math.max(0, Math.min(d.column - 1, line.length)),
      d.endLine === d.line ? Math.min(d.endColumn - 1, line.length) : line.length,
    )
    // keep tabs in the padding so the marker lines up with the source line in any terminal
    const padding = text.slice(0, start).replace(/[^\t]/g, " ")
    const marker = "~".repeat(Math.max(1, end - start))
    out.push(`${String(d.line).padStart(GUTTER)} | ${text}`.trimEnd())
    out.push(`${" ".repeat(GUTTER)} | ${padding}${marker}`)
  }
  if (d.hint !== "") out.push(`${INDENT}${d.hint}`)
  return out.join("\n")
}

/** The diagnostics as text, each with its source line and marker, separated by blank lines. */
export const renderDiagnostics = (diags: ReadonlyArray<Diagnostic>, options: RenderOptions = {}): string => {
  const cache = new Map<string, ReadonlyArray<string> | null>()
  return diags.map((d) => renderOne(d, options, cache)).join("\n\n")
}

/** The whole human-readable message for any invalid-pipeline error. */
export const renderInvalid = (e: PipelineInvalid, options: RenderOptions = {}): string => {
  switch (e._tag) {
    case "UsageError":
      return e.hint === "" ? `error: ${e.message}` : `error: ${e.message}\n${INDENT}${e.hint}`
    case "PipelineSyntaxError":
    case "SchemaViolation":
    case "SpecError":
    case "CycleDetected":
      return renderDiagnostics(e.diagnostics, options)
    default:
      return unreachable(e)
  }
}

/** One problem in machine-readable form; a usage error has no file (`""`) and line and column 0. */
export interface InvalidEntry {
  file: string
  line: number
  column: number
  message: string
  hint: string
}

/** The `--json` form of an invalid-pipeline error. */
export const invalidToJson = (e: PipelineInvalid): { status: "invalid"; errors: Array<InvalidEntry> } => {
  switch (e._tag) {
    case "UsageError":
      return {
        status: "invalid",
        errors: [{ file: "", line: 0, column: 0, message: e.message, hint: e.hint }],
      }
    case "PipelineSyntaxError":
    case "SchemaViolation":
    case "SpecError":
    case "CycleDetected":
      return {
        status: "invalid",
        errors: e.diagnostics.map((d) => ({
          file: d.file,
          line: d.line,
          column: d.column,
          message: d.message,
          hint: d.hint,
        })),
      }
    default:
      return unreachable(e)
  }
}
