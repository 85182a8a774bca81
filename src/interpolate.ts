/**
 * `${...}` references in pipeline strings. Only two forms belong to us, `${params.<dotted.name>}` and
 * `${stages.<stage>.outs[<index>]}`; every other `${...}` (`${HOME}`, `${1:-x}`) is the shell's and is
 * left as written, and `$${` writes a literal `${`. Anything that starts like one of ours but does not
 * parse (`${params.}`, `${stages.a.deps[0]}`) is an error rather than a silent shell expansion.
 */
import { quoteFor, ShellContext } from "./shell-quote.js"

/** A reference to a param or to another stage's out, as found in a string. */
export type Reference =
  | { readonly _tag: "Param"; readonly name: string; readonly raw: string }
  | { readonly _tag: "StageOut"; readonly stage: string; readonly index: number; readonly raw: string }

type Piece =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "Ref"; readonly ref: Reference }
  | { readonly _tag: "Malformed"; readonly raw: string }

const PARAM = /^params\.([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)$/
// stage names may contain dots, so the stage is everything up to the last `.outs[`
const STAGE_OUT = /^stages\.([A-Za-z0-9_][A-Za-z0-9_.-]*)\.outs\[(\d+)\]$/

const parse = (s: string): ReadonlyArray<Piece> => {
  const pieces: Piece[] = []
  let text = ""
  let i = 0
  while (i < s.length) {
    if (s.startsWith("$${", i)) {
      text += "${"
      i += 3
      continue
    }
    if (!s.startsWith("${", i)) {
      text += s[i]
      i++
      continue
    }
    const close = s.indexOf("}", i + 2)
    const inner = close < 0 ? s.slice(i + 2) : s.slice(i + 2, close)
    if (!inner.startsWith("params.") && !inner.startsWith("stages.")) {
      // the shell's: keep `${` and scan on, so a reference nested in `${X:-${params.y}}` is still found
      text += "${"
      i += 2
      continue
    }
    if (text !== "") pieces.push({ _tag: "Text", text })
    text = ""
    const raw = close < 0 ? s.slice(i) : s.slice(i, close + 1)
    const param = close < 0 ? null : PARAM.exec(inner)
    const stageOut = close < 0 ? null : STAGE_OUT.exec(inner)
    if (param !== null) pieces.push({ _tag: "Ref", ref: { _tag: "Param", name: param[1]!, raw } })
    else if (stageOut !== null)
      pieces.push({
        _tag: "Ref",
        ref: { _tag: "StageOut", stage: stageOut[1]!, index: Number(stageOut[2]), raw },
      })
    else pieces.push({ _tag: "Malformed", raw })
    i += raw.length
  }
  if (text !== "") pieces.push({ _tag: "Text", text })
  return pieces
}

/** Every well-formed reference in `s`, in order. */
export const referencesIn = (s: string): ReadonlyArray<Reference> =>
  parse(s).flatMap((p) => (p._tag === "Ref" ? [p.ref] : []))

/** A reference's value, or why it has none. */
export type Resolution =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly message: string; readonly hint: string }

/** A reference that could not be resolved, with which occurrence of `raw` in the string it was. */
export interface TemplateError {
  readonly raw: string
  readonly occurrence: number
  readonly message: string
  readonly hint: string
}

/**
 * How a string is interpolated:
 * - `text`: values are written as text (objects and lists as JSON);
 * - `typed`: like text, but a string that is exactly one reference becomes the value itself, type and all;
 * - `shell`: like text, each value escaped for the shell quoting open where it stands (see shell-quote.ts).
 */
export type Mode = "text" | "typed" | "shell"

/** The text form of a value inside a longer string. */
export const valueText = (value: unknown): string =>
  typeof value === "string"
    ? value
    : value !== null && typeof value === "object"
      ? JSON.stringify(value)
      : String(value)

const MALFORMED_HINT =
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the hint shows the reference syntax itself
  "Write ${params.NAME} or ${stages.STAGE.outs[INDEX]}; to pass `${` to the shell as it is, write `$${`."

/** Interpolates `s`; `errors` lists every reference that could not be resolved or did not parse. */
export const interpolate = (
  s: string,
  resolve: (ref: Reference) => Resolution,
  mode: Mode,
): { readonly value: unknown; readonly errors: ReadonlyArray<TemplateError> } => {
  const pieces = parse(s)
  const errors: TemplateError[] = []
  const seen = new Map<string, number>()
  const occurrence = (raw: string) => {
    const n = seen.get(raw) ?? 0
    seen.set(raw, n + 1)
    return n
  }
  const shell = mode === "shell" ? new ShellContext() : undefined
  const values: unknown[] = []
  for (const piece of pieces) {
    if (piece._tag === "Text") {
      shell?.feed(piece.text)
      values.push(piece.text)
    } else if (piece._tag === "Malformed") {
      const message = `malformed reference "${piece.raw}"`
      errors.push({ raw: piece.raw, occurrence: occurrence(piece.raw), message, hint: MALFORMED_HINT })
      values.push(piece.raw)
    } else {
      const resolution = resolve(piece.ref)
      const n = occurrence(piece.ref.raw)
      if (!resolution.ok) {
        errors.push({ raw: piece.ref.raw, occurrence: n, message: resolution.message, hint: resolution.hint })
        values.push(piece.ref.raw)
      } else if (shell !== undefined) values.push(quoteFor(valueText(resolution.value), shell.quoting))
      else values.push(resolution.value)
    }
  }
  if (mode === "typed" && pieces.length === 1 && pieces[0]?._tag === "Ref")
    return { value: values[0], errors }
  return { value: values.map(valueText).join(""), errors }
}
