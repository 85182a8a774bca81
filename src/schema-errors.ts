/**
 * From ajv's errors to diagnostics a person can act on. ajv (with `allErrors`) reports every failed
 * keyword, several per mistake; this keeps the most specific one per place, words it in the pipeline's
 * terms ("unknown key "cmdd" in stage "train"") and points at the offending key or value in the YAML.
 */
import type { ErrorObject } from "ajv"
import { DURATION_HINT } from "./duration.js"
import type { Diagnostic } from "./errors.js"
import type { Span } from "./model.js"
import { diagnostic, keySpanAt, locate, pointerSegments, type SourceFile, spanAt } from "./source-map.js"
import { closest, quotedList } from "./suggest.js"

type Path = ReadonlyArray<string | number>
type SchemaObject = { readonly [key: string]: unknown }

const isObject = (v: unknown): v is SchemaObject => typeof v === "object" && v !== null && !Array.isArray(v)

const render = (path: Path): string =>
  path.reduce<string>(
    (s, seg, i) => (/^\d+$/.test(String(seg)) ? `${s}[${seg}]` : i === 0 ? String(seg) : `${s}.${seg}`),
    "",
  )

/** How a message names the place at `path`: `stage "train"`, `"deps[0]" of stage "train"`, `"name"`. */
export const describePath = (path: Path): string => {
  if (path.length === 0) return "the pipeline"
  if (path[0] === "stages" && path.length >= 2) {
    const stage = `stage "${path[1]}"`
    return path.length === 2 ? stage : `"${render(path.slice(2))}" of ${stage}`
  }
  return `"${render(path)}"`
}

/** Where an unknown key sits: `at the top level`, `in stage "train"`, `in "resources" of stage "train"`. */
const container = (path: Path): string =>
  path.length === 0 ? "at the top level" : `in ${describePath(path)}`

const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: "a string",
  integer: "an integer",
  number: "a number",
  boolean: "true or false",
  array: "a list",
  object: "a mapping",
  null: "empty",
}

const typeWords = (type: unknown): string => {
  const types = Array.isArray(type) ? type : [type]
  const words = types.map((t) => TYPE_WORDS[String(t)] ?? String(t))
  return words.length <= 1 ? (words[0] ?? "") : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`
}

const shown = (value: unknown): string => {
  if (value === null || value === undefined) return "it is empty"
  if (Array.isArray(value)) return "got a list"
  if (isObject(value)) return "got a mapping"
  const json = JSON.stringify(value)
  return `got ${json.length > 40 ? `${json.slice(0, 37)}...` : json}`
}

const firstSentence = (text: unknown): string => {
  if (typeof text !== "string") return ""
  const end = text.search(/\.(\s|$)/)
  return end < 0 ? text : text.slice(0, end + 1)
}

/** A description continuing a sentence: "How many ..." -> "how many ...", but "CPU slots" stays. */
const lowerFirst = (s: string): string =>
  /^[A-Z][A-Z0-9]/.test(s) ? s : s.charAt(0).toLowerCase() + s.slice(1)

/** `lead`, then what the value is for (its schema's description), as one sentence. */
const hintWith = (lead: string, about: string): string =>
  about === "" ? `${lead}.` : `${lead}: ${lowerFirst(about)}`

/** A `$ref` inside the root schema (`#/definitions/x`) replaced by what it points at. */
const deref = (schema: unknown, root: SchemaObject): unknown => {
  if (!isObject(schema) || typeof schema.$ref !== "string" || !schema.$ref.startsWith("#/")) return schema
  const target = pointerSegments(schema.$ref.slice(1)).reduce<unknown>(
    (node, seg) => (isObject(node) ? node[seg] : undefined),
    root,
  )
  return isObject(target) ? { ...target, ...schema } : schema
}

/** The hint that explains a value: the first sentence of its schema's description. */
const describedBy = (schema: unknown, root: SchemaObject): string => {
  const s = deref(schema, root)
  return isObject(s) ? firstSentence(s.description) : ""
}

const isDurationRule = (e: ErrorObject): boolean => e.schemaPath.includes("/definitions/duration/")

/** Turns ajv errors into diagnostics; `prefix` is where the validated value sits in the file. */
export const schemaDiagnostics = (
  errors: ReadonlyArray<ErrorObject>,
  source: SourceFile,
  options: {
    readonly root: object
    readonly prefix?: Path
    /** where to point when the value the error is about does not appear in the file (a defaulted `with:`) */
    readonly fallback?: Span
  },
): ReadonlyArray<Diagnostic> => {
  const root = options.root as SchemaObject
  const prefix = options.prefix ?? []
  const withPath = (e: ErrorObject): Path => [...prefix, ...pointerSegments(e.instancePath)]
  const at = (path: Path, key: boolean): Span =>
    !locate(source, path).found && options.fallback !== undefined
      ? options.fallback
      : key
        ? keySpanAt(source, path)
        : spanAt(source, path)

  // A value of the wrong type fails every other rule about it too: report the type alone.
  const mistyped = errors.filter((e) => e.keyword === "type").map((e) => e.instancePath)
  const shadowed = (e: ErrorObject) =>
    e.keyword !== "type" && mistyped.some((p) => e.instancePath === p || e.instancePath.startsWith(`${p}/`))

  // `stagse:` is both an unknown key and a missing `stages`: the typo is the one worth reporting.
  const misspelt = (e: ErrorObject) =>
    e.keyword === "required" &&
    errors.some(
      (other) =>
        other.keyword === "additionalProperties" &&
        other.instancePath === e.instancePath &&
        closest(String(other.params.additionalProperty), [String(e.params.missingProperty)]) !== undefined,
    )

  const out: Diagnostic[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    // `propertyName` marks the inner error of a `propertyNames` failure, reported by the outer one;
    // `if` only repeats what its `then` said.
    if (e.propertyName !== undefined || e.keyword === "if" || shadowed(e) || misspelt(e)) continue
    const d = translate(e, withPath(e), at, root)
    const id = `${d.line}:${d.column}:${d.message}`
    if (seen.has(id)) continue
    seen.add(id)
    out.push(d)
  }
  return out
}

const translate = (
  e: ErrorObject,
  path: Path,
  at: (path: Path, key: boolean) => Span,
  root: SchemaObject,
): Diagnostic => {
  const where = describePath(path)
  const parent = isObject(e.parentSchema) ? e.parentSchema : {}
  const params = e.params as Readonly<Record<string, unknown>>
  switch (e.keyword) {
    case "additionalProperties": {
      const key = String(params.additionalProperty)
      const allowed = Object.keys(isObject(parent.properties) ? parent.properties : {})
      const match = closest(key, allowed)
      const hint = match !== undefined ? `Did you mean "${match}"?` : `Allowed keys: ${quotedList(allowed)}.`
      return diagnostic(at([...path, key], true), `unknown key "${key}" ${container(path)}`, hint)
    }
    case "required": {
      const key = String(params.missingProperty)
      const about = describedBy(isObject(parent.properties) ? parent.properties[key] : undefined, root)
      const hint = about === "" ? `Add "${key}".` : `Add "${key}": ${lowerFirst(about)}`
      const message =
        path.length === 0 ? `missing required key "${key}"` : `missing required key "${key}" in ${where}`
      return diagnostic(at(path, true), message, hint)
    }
    case "type": {
      const about = describedBy(parent, root)
      const expected = typeWords(params.type)
      return diagnostic(
        at(path, false),
        `${where} must be ${expected}${e.data === null ? ", but it is empty" : ` (${shown(e.data)})`}`,
        about === "" ? `Write ${expected} here.` : `Write ${expected} here: ${lowerFirst(about)}`,
      )
    }
    case "pattern":
      if (isDurationRule(e))
        return diagnostic(
          at(path, false),
          `invalid duration ${JSON.stringify(e.data)} for ${where}`,
          DURATION_HINT,
        )
      return diagnostic(
        at(path, false),
        `${where} has an invalid value ${JSON.stringify(e.data)}`,
        describedBy(parent, root),
      )
    case "propertyNames": {
      const name = String(params.propertyName)
      const last = path.at(-1)
      const what =
        path.length === 1 && last === "stages"
          ? "stage name"
          : last === "env"
            ? "environment variable name"
            : path[0] === "params"
              ? "param name"
              : "key"
      const message = `invalid ${what} "${name}"${what === "stage name" || path.length === 0 ? "" : ` in ${where}`}`
      return diagnostic(at([...path, name], true), message, describedBy(parent.propertyNames, root))
    }
    case "dependencies":
      return diagnostic(
        at([...path, String(params.property)], true),
        `"${String(params.property)}" in ${where} needs "${String(params.missingProperty)}"`,
        `"with" configures a built-in stage kind: add "uses: <kind>", or remove "with".`,
      )
    case "minimum":
    case "maximum": {
      const bound = `${e.keyword === "minimum" ? "at least" : "at most"} ${String(params.limit)}`
      return diagnostic(
        at(path, false),
        `${where} must be ${bound} (${shown(e.data)})`,
        hintWith(`Write a number of ${bound} here`, describedBy(parent, root)),
      )
    }
    case "minItems":
    case "minLength":
    case "minProperties":
      return diagnostic(
        at(path, false),
        `${where} must not be empty`,
        path.length === 1 && path[0] === "stages"
          ? 'Add at least one stage, for example "hello: {cmd: echo hello}".'
          : hintWith(
              e.keyword === "minItems" ? "Add at least one entry" : "Write a value",
              describedBy(parent, root),
            ),
      )
    case "uniqueItems": {
      const j = Number(params.j)
      const item = Array.isArray(e.data) ? e.data[j] : undefined
      return diagnostic(
        at([...path, Math.max(Number(params.i), j)], false),
        `${where} lists ${JSON.stringify(item)} twice`,
        "Remove the repeated entry.",
      )
    }
    case "enum":
      return diagnostic(
        at(path, false),
        `${where} must be one of ${quotedList((params.allowedValues as ReadonlyArray<unknown>).map(String))} (${shown(e.data)})`,
        describedBy(parent, root),
      )
    default:
      return diagnostic(at(path, false), `${where} ${e.message ?? "is invalid"}`, describedBy(parent, root))
  }
}

/**
 * The rule the schema cannot state under ajv's strict mode (`oneOf` of `required` needs the properties
 * repeated in each branch): a stage has exactly one of `cmd` and `uses`.
 */
export const stageShapeDiagnostics = (
  stages: unknown,
  source: SourceFile,
  stageKeys: ReadonlyArray<string>,
): ReadonlyArray<Diagnostic> => {
  if (!isObject(stages)) return []
  return Object.entries(stages).flatMap(([name, stage]): Diagnostic[] => {
    if (!isObject(stage)) return []
    const hasCmd = stage.cmd !== undefined
    const hasUses = stage.uses !== undefined
    if (hasCmd && hasUses)
      return [
        diagnostic(
          keySpanAt(source, ["stages", name, "uses"]),
          `stage "${name}" has both "cmd" and "uses"`,
          'A stage runs either shell commands ("cmd") or a built-in stage kind ("uses"): remove one of them.',
        ),
      ]
    // `with` alone is reported by the schema's `dependencies` rule, which says more; a misspelt `cmdd` by
    // the unknown-key rule
    const misspelt = Object.keys(stage).some(
      (k) => !stageKeys.includes(k) && closest(k, ["cmd", "uses"]) !== undefined,
    )
    if (!hasCmd && !hasUses && stage.with === undefined && !misspelt)
      return [
        diagnostic(
          keySpanAt(source, ["stages", name]),
          `stage "${name}" needs either "cmd" or "uses"`,
          'Add "cmd: <shell command>" to run commands, or "uses: <kind>" to run a built-in stage kind.',
        ),
      ]
    return []
  })
}
