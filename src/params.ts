/**
 * Params: the pipeline's `params:` defaults, overridden by the `params_file` and then by `--set` (defaults
 * < params_file < --set). Overrides may only set params that have a default, so that a typo cannot
 * silently create a new, unused param.
 */
import { Either } from "effect"
import { isScalar, parseDocument } from "yaml"
import { type Diagnostic, UsageError } from "./errors.js"
import { diagnostic, keySpanAt, type SourceFile } from "./source-map.js"
import { quotedList, suggestion } from "./suggest.js"

/** Params by name; a value that is a mapping is a group of params. */
export type Params = Readonly<Record<string, unknown>>

/** Whether a value is a YAML mapping (a group of params), not a scalar or a list. */
export const isMapping = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Every dotted name, groups included (`train`, `train.lr`), in file order. */
export const paramNames = (params: Params, prefix = ""): ReadonlyArray<string> =>
  Object.entries(params).flatMap(([key, value]) => {
    const name = prefix + key
    return isMapping(value) ? [name, ...paramNames(value, `${name}.`)] : [name]
  })

/** The value of a dotted name (a group's value is its mapping), if there is one. */
export const getParam = (
  params: Params,
  name: string,
): { readonly found: true; readonly value: unknown } | { readonly found: false } => {
  let value: unknown = params
  for (const key of name.split(".")) {
    if (!isMapping(value) || !Object.hasOwn(value, key)) return { found: false }
    value = value[key]
  }
  return { found: true, value }
}

/** The hint for a param name that does not exist. */
export const unknownParamHint = (name: string, params: Params): string =>
  suggestion(name, paramNames(params), {
    listed: 'Declare it under the top-level "params:"; known params:',
    none: 'Declare it under the top-level "params:" of the pipeline.',
  })

/**
 * `defaults` with the values of a params file laid over them, group by group. Each key of the file must
 * exist in the defaults; diagnostics point at the offending key in the params file.
 */
export const overrideParams = (
  defaults: Params,
  overrides: Params,
  file: SourceFile,
): { readonly params: Params; readonly diagnostics: ReadonlyArray<Diagnostic> } => {
  const diagnostics: Diagnostic[] = []
  const merge = (base: Params, over: Params, path: ReadonlyArray<string>): Params => {
    // No prototype, so that a param named "__proto__" is set like any other.
    const result: Record<string, unknown> = Object.assign(Object.create(null), base)
    for (const [key, value] of Object.entries(over)) {
      const here = [...path, key]
      const name = here.join(".")
      const span = keySpanAt(file, here)
      if (!Object.hasOwn(base, key)) {
        const siblings = Object.keys(base).map((k) => [...path, k].join("."))
        const hint = suggestion(name, siblings, {
          listed:
            'A params file may only set params declared under "params:" in the pipeline; here those are',
          none: 'A params file may only set params declared under "params:" in the pipeline.',
        })
        diagnostics.push(diagnostic(span, `unknown param "${name}" in the params file`, hint))
      } else if (isMapping(base[key])) {
        if (isMapping(value)) result[key] = merge(base[key], value, here)
        else
          diagnostics.push(
            diagnostic(
              span,
              `param "${name}" is a group of params, not a single value`,
              `Set its members one by one: ${quotedList(Object.keys(base[key]).map((k) => `${name}.${k}`))}.`,
            ),
          )
      } else if (isMapping(value)) {
        diagnostics.push(
          diagnostic(
            span,
            `param "${name}" is a single value, not a group`,
            "Give it a single value, as its default has.",
          ),
        )
      } else {
        result[key] = value
      }
    }
    return result
  }
  return { params: merge(defaults, overrides, []), diagnostics }
}

const SET_EXAMPLE = "Write --set NAME=VALUE, for example --set train.lr=0.001."

/** Parses one raw `--set` argument: a dotted name and a YAML scalar value. */
export const parseSet = (
  raw: string,
): Either.Either<{ readonly name: string; readonly value: unknown }, UsageError> => {
  const eq = raw.indexOf("=")
  if (eq < 0) return Either.left(new UsageError({ message: `--set "${raw}" has no "="`, hint: SET_EXAMPLE }))
  const name = raw.slice(0, eq).trim()
  const text = raw.slice(eq + 1)
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(name))
    return Either.left(
      new UsageError({ message: `--set "${raw}" does not start with a param name`, hint: SET_EXAMPLE }),
    )
  // an empty value means the empty string, which is what `--set name=` says to most people
  if (text.trim() === "") return Either.right({ name, value: "" })
  const doc = parseDocument(text, { resolveKnownTags: false })
  if (doc.errors.length > 0 || !isScalar(doc.contents))
    return Either.left(
      new UsageError({
        message: `--set "${raw}": the value must be a single number, string or boolean`,
        hint: `Quote it to pass it as a string, e.g. --set '${name}="${text.replace(/"/g, '\\"')}"'.`,
      }),
    )
  return Either.right({ name, value: doc.contents.value })
}

const setIn = (params: Params, keys: ReadonlyArray<string>, value: unknown): Params => {
  const [key, ...rest] = keys
  if (key === undefined) return params
  const current = params[key]
  return {
    ...params,
    [key]: rest.length === 0 ? value : setIn(isMapping(current) ? current : {}, rest, value),
  }
}

/** `params` with each raw `--set NAME=VALUE` applied in order; each NAME must be a declared, single param. */
export const applySets = (params: Params, sets: ReadonlyArray<string>): Either.Either<Params, UsageError> => {
  let result = params
  for (const raw of sets) {
    const parsed = parseSet(raw)
    if (Either.isLeft(parsed)) return Either.left(parsed.left)
    const { name, value } = parsed.right
    const current = getParam(params, name)
    if (!current.found)
      return Either.left(
        new UsageError({
          message: `--set "${raw}": unknown param "${name}"`,
          hint: suggestion(name, paramNames(params), {
            listed: '--set can only change params declared under "params:" in the pipeline:',
            none: 'The pipeline declares no params: declare them under "params:" first.',
          }),
        }),
      )
    if (isMapping(current.value))
      return Either.left(
        new UsageError({
          message: `--set "${raw}": param "${name}" is a group of params`,
          hint: `Set one of its members instead: ${quotedList(Object.keys(current.value).map((k) => `${name}.${k}`))}.`,
        }),
      )
    result = setIn(result, name.split("."), value)
  }
  return Either.right(result)
}
