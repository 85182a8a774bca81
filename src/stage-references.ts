/**
 * What a stage refers to: the params it uses (listed under `params:` or interpolated anywhere in it) and the
 * other stages' outs it names with `${stages.x.outs[i]}`, each located in the file.
 */
import type { Diagnostic } from "./errors.js"
import { referencesIn } from "./interpolate.js"
import { getParam, isMapping, type Params, unknownParamHint } from "./params.js"
import { diagnostic, type SourceFile, spanAt, spanWithin } from "./source-map.js"
import type { Placed, RawStage } from "./stage-resolve.js"

type Path = ReadonlyArray<string | number>

/** What finding a stage's references needs. */
export interface ReferenceInputs {
  readonly source: SourceFile
  readonly params: Params
  /** the stages as written */
  readonly stages: ReadonlyMap<string, RawStage>
  /** stage `name`'s outs by index, as `${stages.name.outs[i]}` sees them; undefined inside a loop of references */
  readonly outsOf: (name: string) => ReadonlyArray<string> | undefined
}

/** Calls `visit` with every string inside `value` and its path in the file. */
const eachString = (value: unknown, path: Path, visit: (text: string, path: Path) => void): void => {
  if (typeof value === "string") visit(value, path)
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) eachString(v, [...path, i], visit)
  else if (isMapping(value)) for (const [k, v] of Object.entries(value)) eachString(v, [...path, k], visit)
}

/**
 * The params the stage uses with their values, sorted by name; a listed param that does not exist is
 * reported into `errors`.
 */
export const usedParams = (
  inputs: ReferenceInputs,
  name: string,
  raw: RawStage,
  errors: Diagnostic[],
): Readonly<Record<string, unknown>> => {
  const used: Array<[string, unknown]> = []
  ;(raw.params ?? []).forEach((p, i) => {
    const found = getParam(inputs.params, p)
    if (found.found) used.push([p, found.value])
    else
      errors.push(
        diagnostic(
          spanAt(inputs.source, ["stages", name, "params", i]),
          `unknown param "${p}" in stage "${name}"`,
          unknownParamHint(p, inputs.params),
        ),
      )
  })
  // A param interpolated anywhere in the stage is used too: its value is already in the fingerprint through
  // the text it was written into, and listing it lets `status` say "param x: 1 -> 2" and the stage read it
  // from PIPELINE_PARAMS.
  const listed = new Set(used.map(([p]) => p))
  for (const field of ["cmd", "deps", "outs", "with", "env"] as const)
    eachString(raw[field], [], (text) => {
      for (const ref of referencesIn(text)) {
        if (ref._tag !== "Param" || listed.has(ref.name)) continue
        const found = getParam(inputs.params, ref.name)
        if (!found.found) continue // reported where it is written
        listed.add(ref.name)
        used.push([ref.name, found.value])
      }
    })
  return Object.fromEntries(used.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

/**
 * The other stages' outs this stage's command, `with:` or `env` refers to: each is a dep, so its content
 * is in the fingerprint (a stage that reads `${stages.clean.outs[0]}` reruns when that file changes).
 */
export const referencedOuts = (
  inputs: ReferenceInputs,
  name: string,
  raw: RawStage,
): ReadonlyArray<Placed<string>> => {
  const found: Placed<string>[] = []
  for (const field of ["cmd", "with", "env"] as const)
    eachString(raw[field], ["stages", name, field], (text, path) => {
      for (const ref of referencesIn(text)) {
        if (ref._tag !== "StageOut" || ref.stage === name || !inputs.stages.has(ref.stage)) continue
        const out = inputs.outsOf(ref.stage)?.[ref.index]
        if (out !== undefined) found.push({ value: out, span: spanWithin(inputs.source, path, ref.raw, 0) })
      }
    })
  return found
}

/** Every `${stages.x.outs[i]}` of a known stage written anywhere in the stage, located: each is an edge. */
export const stageRefs = (
  inputs: ReferenceInputs,
  name: string,
  raw: RawStage,
): ReadonlyArray<Placed<string>> => {
  const found: Placed<string>[] = []
  for (const field of ["cmd", "deps", "outs", "with", "env"] as const)
    eachString(raw[field], ["stages", name, field], (text, path) => {
      const seen = new Map<string, number>()
      for (const ref of referencesIn(text)) {
        const n = seen.get(ref.raw) ?? 0
        seen.set(ref.raw, n + 1)
        if (ref._tag === "StageOut" && inputs.stages.has(ref.stage))
          found.push({ value: ref.stage, span: spanWithin(inputs.source, path, ref.raw, n) })
      }
    })
  return found
}
