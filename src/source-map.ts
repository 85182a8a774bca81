/**
 * From YAML text to located diagnostics: parses a file with `yaml`'s `parseDocument` and a `LineCounter`,
 * finds the node behind a JSON-pointer-like path (what ajv's `instancePath` gives), and turns nodes and
 * offsets into spans.
 */
import { isUtf8 } from "node:buffer"
import { isAbsolute, relative, sep } from "node:path"
import {
  type Alias,
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  visit,
} from "yaml"
import type { Diagnostic } from "./errors.js"
import type { Span } from "./model.js"
import { originOf, setOrigin } from "./origins.js"
import { fastYaml } from "./yaml-fast.js"

/**
 * A YAML (or JSON) file, kept whole so that every later error can point into it. `value` is its data;
 * `doc` and `lines` (the parsed syntax tree) are built on first use, which a valid file whose data came
 * from the parse cache (`parse-cache.ts`) never needs: `yaml` parses a 1,000-stage pipeline in ~0.3 s.
 */
export interface SourceFile {
  /** absolute path */
  readonly path: string
  /** the path as diagnostics show it: relative to the working directory when inside it */
  readonly display: string
  readonly text: string
  readonly value: unknown
  readonly doc: Document.Parsed
  readonly lines: LineCounter
}

/**
 * A source file whose data is already known (from the parse cache, or parsed without errors): its syntax tree
 * is parsed again on demand.
 */
export const cachedSource = (path: string, display: string, text: string, value: unknown): SourceFile => {
  let parsed: { doc: Document.Parsed; lines: LineCounter } | undefined
  const tree = () => {
    if (parsed === undefined) {
      const lines = new LineCounter()
      parsed = { doc: parseDocument(text, { ...PARSE_OPTIONS, lineCounter: lines }), lines }
    }
    return parsed
  }
  return {
    path,
    display,
    text,
    value,
    get doc() {
      return tree().doc
    },
    get lines() {
      return tree().lines
    },
  }
}

/**
 * How pipeline files are parsed. YAML 1.1 tags (`!!binary`, `!!timestamp`, `!!set`, ...) are not resolved:
 * a pipeline holds strings, numbers, booleans, lists and mappings, never bytes, dates or sets.
 */
const PARSE_OPTIONS = { uniqueKeys: true, resolveKnownTags: false } as const

/**
 * A span computed on first read of any of its fields. Spans are made for every stage, dep and out, but
 * read only when something is wrong: computing them lazily keeps a valid file's syntax tree unbuilt.
 */
const lazySpan = (source: SourceFile, compute: () => Span): Span => {
  let span: Span | undefined
  const get = () => {
    span ??= compute()
    return span
  }
  const lazy = {
    get file() {
      return source.display
    },
    get line() {
      return get().line
    },
    get column() {
      return get().column
    },
    get endLine() {
      return get().endLine
    },
    get endColumn() {
      return get().endColumn
    },
  }
  setOrigin(lazy, source.path)
  return lazy
}

/** How a diagnostic names a file: relative to `cwd` with `/` separators when inside it, else absolute. */
export const displayPath = (file: string, cwd: string): string => {
  const rel = relative(cwd, file)
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return file
  return rel.split(sep).join("/")
}

const SYNTAX_HINTS: Partial<Record<string, string>> = {
  DUPLICATE_KEY: "Each key may appear once in a mapping: merge the two entries or rename one.",
  TAB_AS_INDENT: "Indent YAML with spaces, not tabs.",
  BAD_INDENT: 'Check the indentation, and that every "[" and "{" is closed.',
  MISSING_CHAR: "A bracket or quote is not closed: add the missing character.",
  BLOCK_AS_IMPLICIT_KEY: 'Check the indentation and the ":" after each key; quote values that contain ": ".',
  MULTILINE_IMPLICIT_KEY: 'A key must fit on one line: check for a missing ":" or an unclosed quote above.',
  MULTIPLE_DOCS: 'Keep one document per file: remove the "---" separator and what follows, or merge them.',
  BAD_ALIAS: "Define the anchor (&name) before the alias (*name) that uses it.",
}
const DEFAULT_SYNTAX_HINT = 'Fix the YAML syntax here; quote strings that contain ": " or " #".'

// At most this many syntax errors: after the first few, the parser's recovery mostly reports echoes.
const MAX_SYNTAX_ERRORS = 5

/**
 * Parses `text`; the second element lists its syntax errors (duplicate keys included) as diagnostics. A plain
 * valid file is read by the fast path (`yaml-fast.ts`); anything else by `yaml`.
 */
export const parseSource = (
  path: string,
  display: string,
  text: string,
): { readonly source: SourceFile; readonly errors: ReadonlyArray<Diagnostic> } => {
  const fast = fastYaml(text)
  if (fast !== undefined) return { source: cachedSource(path, display, text, fast.value), errors: [] }
  const lines = new LineCounter()
  const doc = parseDocument(text, { ...PARSE_OPTIONS, lineCounter: lines, prettyErrors: true })
  let value: unknown
  let expandError: string | undefined
  try {
    value = doc.errors.length > 0 ? undefined : doc.toJS()
  } catch (e) {
    // `yaml` refuses to expand aliases past a limit (the "billion laughs"), and throws on a few other shapes
    expandError = e instanceof Error ? e.message : String(e)
  }
  // A valid file's tree is let go: on a large pipeline it is most of the heap while the stages run, and only an
  // error found later needs it (parsed again then, as for a file from the parse cache).
  if (doc.errors.length === 0 && expandError === undefined)
    return { source: cachedSource(path, display, text, value), errors: [] }
  const source: SourceFile = { path, display, text, value, doc, lines }
  if (expandError !== undefined) return { source, errors: [expansionError(source, expandError)] }
  const seenLines = new Set<number>()
  const errors: Diagnostic[] = []
  for (const error of doc.errors) {
    const key = error.code === "DUPLICATE_KEY" ? keyAt(text, error.pos[0]) : undefined
    const span = spanOfRange(
      source,
      error.pos[0],
      key === undefined ? error.pos[1] : error.pos[0] + key.length,
    )
    if (seenLines.has(span.line)) continue
    seenLines.add(span.line)
    // prettyErrors appends " at line L, column C:" and a code excerpt; the renderer draws its own
    const plain = (error.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "")
    const message =
      error.code === "DUPLICATE_KEY"
        ? `duplicate key "${key?.name}"`
        : error.code === "MULTIPLE_DOCS"
          ? "invalid YAML: the file holds more than one document"
          : `invalid YAML: ${plain.charAt(0).toLowerCase()}${plain.slice(1)}`
    errors.push(diagnostic(span, message, SYNTAX_HINTS[error.code] ?? DEFAULT_SYNTAX_HINT))
    if (errors.length === MAX_SYNTAX_ERRORS) break
  }
  return { source, errors }
}

/**
 * Where `bytes` stop being UTF-8, as a diagnostic; undefined if they are valid. Checked before parsing: a
 * decoder would silently turn a Latin-1 "é" into U+FFFD, and the command run would not be the one written.
 */
export const invalidUtf8 = (path: string, display: string, bytes: Uint8Array): Diagnostic | undefined => {
  if (isUtf8(bytes)) return undefined
  const at = firstInvalidUtf8(bytes)
  if (at < 0) return undefined
  const lineStart = bytes.lastIndexOf(0x0a, at - 1) + 1
  const line = bytes.subarray(0, at).reduce((n, b) => (b === 0x0a ? n + 1 : n), 1)
  const column = Buffer.from(bytes.subarray(lineStart, at)).toString("utf8").length + 1
  const span = { file: display, line, column, endLine: line, endColumn: column + 1 }
  setOrigin(span, path)
  return diagnostic(
    span,
    `the file is not valid UTF-8 (byte 0x${bytes[at]!.toString(16).toUpperCase().padStart(2, "0")})`,
    'Save the file as UTF-8 (most editors offer "Save with Encoding"), or convert it: iconv -f LATIN1 -t UTF-8.',
  )
}

/** The offset of the first byte that is not part of a well-formed UTF-8 sequence, or -1. */
const firstInvalidUtf8 = (b: Uint8Array): number => {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!
    if (c < 0x80) {
      i++
      continue
    }
    // The second byte's range excludes overlong forms and UTF-16 surrogates (RFC 3629, table 3-7).
    const [n, lo, hi] =
      c >= 0xc2 && c <= 0xdf
        ? [1, 0x80, 0xbf]
        : c === 0xe0
          ? [2, 0xa0, 0xbf]
          : c === 0xed
            ? [2, 0x80, 0x9f]
            : c >= 0xe1 && c <= 0xef
              ? [2, 0x80, 0xbf]
              : c === 0xf0
                ? [3, 0x90, 0xbf]
                : c === 0xf4
                  ? [3, 0x80, 0x8f]
                  : c >= 0xf1 && c <= 0xf3
                    ? [3, 0x80, 0xbf]
                    : [-1, 0, 0]
    if (n < 0) return i
    const second = b[i + 1]
    if (second === undefined || second < lo || second > hi) return i
    for (let k = 2; k <= n; k++) {
      const next = b[i + k]
      if (next === undefined || next < 0x80 || next > 0xbf) return i
    }
    i += n + 1
  }
  return -1
}

/** Why the data of a well-formed document could not be built: an alias to no anchor, or too many aliases. */
const expansionError = (source: SourceFile, message: string): Diagnostic => {
  let unresolved: Alias | undefined
  visit(source.doc, {
    Alias: (_, node) => {
      if (unresolved === undefined && node.resolve(source.doc) === undefined) unresolved = node
    },
  })
  if (unresolved !== undefined)
    return diagnostic(
      spanOfNode(source, unresolved),
      `invalid YAML: unknown alias "*${unresolved.source}"`,
      SYNTAX_HINTS.BAD_ALIAS ?? DEFAULT_SYNTAX_HINT,
    )
  if (/alias/i.test(message))
    return diagnostic(
      spanOfStart(source),
      "invalid YAML: its aliases (*name) expand to too much data",
      "Write the repeated values out, or use fewer aliases.",
    )
  return diagnostic(spanOfStart(source), `invalid YAML: ${message.split("\n")[0]}`, DEFAULT_SYNTAX_HINT)
}

// The key at `offset`: its name (quotes removed) and the length of the key as written.
const keyAt = (text: string, offset: number): { readonly name: string; readonly length: number } => {
  const rest = text.slice(offset).split("\n")[0] ?? ""
  const raw = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^:#]*?)\s*:(?:\s|$)/.exec(rest)?.[1] ?? rest
  return { name: raw.replace(/^["']|["']$/g, "").trim(), length: Math.max(1, raw.trimEnd().length) }
}

/** The span from offset `start` to `end` (exclusive). */
export const spanOfRange = (source: SourceFile, start: number, end: number): Span => {
  const from = source.lines.linePos(start)
  const to = source.lines.linePos(Math.max(end, start))
  const span = {
    file: source.display,
    line: from.line,
    column: from.col,
    endLine: to.line,
    endColumn: to.col,
  }
  setOrigin(span, source.path)
  return span
}

/** The first character of the file, whatever it holds: where "the whole file is wrong" points. */
export const spanOfFile = (source: SourceFile): Span => {
  const span = { file: source.display, line: 1, column: 1, endLine: 1, endColumn: 2 }
  setOrigin(span, source.path)
  return span
}

/** The span of a node's value (without a trailing comment or the rest of a block). */
export const spanOfNode = (source: SourceFile, node: Node): Span => {
  const [start, end] = node.range ?? [0, 0]
  return spanOfRange(source, start, end)
}

/** The span of the first character of the document: where "the whole file" problems point. */
export const spanOfStart = (source: SourceFile): Span => {
  const start = source.doc.contents?.range?.[0] ?? 0
  return spanOfRange(source, start, start + 1)
}

/** A diagnostic at a span. */
export const diagnostic = (span: Span, message: string, hint: string): Diagnostic => {
  const d = { ...span, message, hint }
  const origin = originOf(span)
  if (origin !== undefined) setOrigin(d, origin)
  return d
}

/** What a path leads to in the document: the value node and, inside a mapping, the key node. */
export interface Located {
  readonly value: Node | undefined
  readonly key: Node | undefined
  /** false when the path ran out of document and these are the deepest nodes found */
  readonly found: boolean
}

const keyName = (key: unknown): string => (isScalar(key) ? String(key.value) : String(key))

const deref = (source: SourceFile, node: unknown): unknown =>
  isAlias(node) ? (node.resolve(source.doc) ?? node) : node

/**
 * The nodes at `path` (mapping keys and list indexes, as in ajv's `instancePath`). If the path runs out
 * of document, the deepest node found is returned, so a diagnostic still points somewhere close.
 */
export const locate = (source: SourceFile, path: ReadonlyArray<string | number>): Located => {
  let located: Located = {
    value: (source.doc.contents ?? undefined) as Node | undefined,
    key: undefined,
    found: true,
  }
  for (const segment of path) {
    const node = deref(source, located.value)
    if (isMap(node)) {
      const pair = node.items.find((p) => keyName(p.key) === String(segment))
      if (pair === undefined) return { ...located, found: false }
      located = { value: (pair.value ?? undefined) as Node | undefined, key: pair.key as Node, found: true }
      // `key:` with nothing after it: the empty value has no width, the key is the better place to point
      if (isScalar(located.value) && located.value.value === null && located.value.source === "") {
        located = { value: located.key, key: located.key, found: true }
      }
    } else if (isSeq(node)) {
      const item = node.items[Number(segment)]
      if (item === undefined) return { ...located, found: false }
      located = { value: item as Node, key: undefined, found: true }
    } else {
      return { ...located, found: false }
    }
  }
  return located
}

/** Splits an ajv `instancePath` (`/stages/a~1b/deps/0`) into its segments. */
export const pointerSegments = (pointer: string): ReadonlyArray<string> =>
  pointer === ""
    ? []
    : pointer
        .slice(1)
        .split("/")
        .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))

/** Span of the value at `path`, else of its key, else the start of the file (computed when read). */
export const spanAt = (source: SourceFile, path: ReadonlyArray<string | number>): Span =>
  lazySpan(source, () => {
    const { value, key } = locate(source, path)
    const node = value ?? key
    return node === undefined ? spanOfStart(source) : spanOfNode(source, node)
  })

/** Span of the key at `path` (the last segment must name a mapping entry), else of its value (computed when read). */
export const keySpanAt = (source: SourceFile, path: ReadonlyArray<string | number>): Span =>
  lazySpan(source, () => {
    const { value, key } = locate(source, path)
    const node = key ?? value
    return node === undefined ? spanOfStart(source) : spanOfNode(source, node)
  })

/** A span chosen when read: `first` if `useFirst()` holds then, else `second`. */
export const spanEither = (source: SourceFile, useFirst: () => boolean, first: Span, second: Span): Span =>
  lazySpan(source, () => {
    const s = useFirst() ? first : second
    return { file: s.file, line: s.line, column: s.column, endLine: s.endLine, endColumn: s.endColumn }
  })

/**
 * The span of `needle` (a `${...}` reference as written) inside the string at `path`, found in the
 * scalar's source text (block scalars included: a reference has no spaces, so YAML never folds one), or
 * the whole scalar when the source spells it differently (escapes). `occurrence` picks the n-th match
 * when the same reference appears more than once.
 */
export const spanWithin = (
  source: SourceFile,
  path: ReadonlyArray<string | number>,
  needle: string,
  occurrence: number,
): Span => lazySpan(source, () => eagerSpanWithin(source, path, needle, occurrence))

const eagerSpanWithin = (
  source: SourceFile,
  path: ReadonlyArray<string | number>,
  needle: string,
  occurrence: number,
): Span => {
  const { value } = locate(source, path)
  if (!isScalar(value) || value.range === undefined || value.range === null) return spanAt(source, path)
  const [start, end] = value.range
  const raw = source.text.slice(start, end)
  let at = -1
  for (let i = 0; i <= occurrence; i++) {
    at = raw.indexOf(needle, at + 1)
    if (at < 0) break
  }
  if (at >= 0) return spanOfRange(source, start + at, start + at + needle.length)
  return spanOfNode(source, value)
}
