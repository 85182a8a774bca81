/**
 * A stage's kind: the one `uses:` names (a built-in kind, or a user's kind module), its `with:` checked
 * against the kind's schema and rules, and the outs and deps the kind derives from it, each placed where
 * the user wrote what it came from.
 */
import { defaultOutDir, type KindDefinition, kinds } from "../stages/registry.js"
import type { Diagnostic } from "./errors.js"
import { isKindModule, type KindModule, KindModuleError } from "./kind-module.js"
import type { Validation } from "./schema.js"
import { schemaDiagnostics } from "./schema-errors.js"
import { diagnostic, keySpanAt, locate, type SourceFile, spanAt, spanEither } from "./source-map.js"
import type { Placed, RawStage } from "./stage-resolve.js"
import { suggestion } from "./suggest.js"

/** What resolving a stage's kind needs from the loader. */
export interface KindInputs {
  readonly source: SourceFile
  readonly pipelineName: string
  /** validates `with:` against a kind's schema (compiled beforehand) */
  readonly validate: (schema: object, data: unknown) => Validation
  /** the kind modules named by `uses:`, loaded (see `kind-module.ts`) */
  readonly kindModules: ReadonlyMap<string, KindModule>
}

/** Where the problems found go: a bad `with:` is a schema violation, the rest spec errors. */
export interface KindProblems {
  readonly specErrors: Diagnostic[]
  readonly schemaErrors: Diagnostic[]
}

/** What a stage's kind made of its `with:`. */
export interface KindUse {
  readonly kind: KindDefinition
  /** a kind module's project-relative path */
  readonly module: string | undefined
  /** `with:` after interpolation, with the schema's defaults; undefined when it is not valid */
  readonly with: Readonly<Record<string, unknown>> | undefined
  /** the outs the kind derives, as it names them (not yet normalised) */
  readonly outs: ReadonlyArray<Placed<string>>
  /** the deps the kind derives; a kind module's own file first */
  readonly deps: ReadonlyArray<Placed<string>>
}

/** The kind `uses:` names and its module's path, or undefined when there is none (reported). */
const lookup = (
  inputs: KindInputs,
  problems: KindProblems,
  name: string,
  uses: string,
): { readonly kind: KindDefinition; readonly module: string | undefined } | undefined => {
  const span = spanAt(inputs.source, ["stages", name, "uses"])
  if (isKindModule(uses)) {
    const loaded = inputs.kindModules.get(uses)
    if (loaded?.ok) return { kind: loaded.kind, module: loaded.path }
    problems.specErrors.push(
      diagnostic(
        span,
        `kind module "${uses}" of stage "${name}" ${loaded?.problem ?? "was not loaded"}`,
        loaded?.hint ?? "",
      ),
    )
    return undefined
  }
  const kind = kinds.get(uses)
  if (kind !== undefined) return { kind, module: undefined }
  problems.specErrors.push(
    diagnostic(
      span,
      `unknown stage kind "${uses}" in stage "${name}"`,
      // a path written without "./" is read as a built-in kind's name
      looksLikePath(uses)
        ? `A kind module is named by its path relative to the pipeline file, starting with "./" or "../"${uses.startsWith("/") ? "" : `: write "./${uses}"`}.`
        : suggestion(uses, [...kinds.keys()], {
            listed: "Built-in kinds:",
            none: "There are no built-in kinds.",
          }),
    ),
  )
  return undefined
}

const looksLikePath = (uses: string): boolean => uses.includes("/") || /\.[cm]?[jt]s$/.test(uses)

/**
 * Resolves stage `name`'s kind and its `with:` (interpolated by `interpolateWith`, called only once the
 * kind is known), reporting every problem into `problems`; undefined when `uses:` names no kind.
 */
export const resolveKind = (
  inputs: KindInputs,
  problems: KindProblems,
  name: string,
  raw: RawStage & { readonly uses: string },
  interpolateWith: () => unknown,
): KindUse | undefined => {
  const found = lookup(inputs, problems, name, raw.uses)
  if (found === undefined) return undefined
  const { kind, module } = found
  const base = ["stages", name]
  const withPath = [...base, "with"]
  const usesSpan = spanAt(inputs.source, [...base, "uses"])
  // the whole `with:` (or `uses:` when there is none): where problems of `with:` as a whole point
  const withSpan = keySpanAt(inputs.source, raw.with === undefined ? [...base, "uses"] : withPath)
  const moduleDeps: Placed<string>[] = module === undefined ? [] : [{ value: module, span: usesSpan }]
  const invalid: KindUse = { kind, module, with: undefined, outs: [], deps: moduleDeps }

  const validation = inputs.validate(kind.schema, interpolateWith())
  if (validation.errors.length > 0) {
    problems.schemaErrors.push(
      ...schemaDiagnostics(validation.errors, inputs.source, {
        root: kind.schema,
        prefix: withPath,
        fallback: withSpan,
      }),
    )
    return invalid
  }
  const args = validation.value as Readonly<Record<string, unknown>>
  try {
    for (const problem of kind.check?.(args) ?? [])
      problems.specErrors.push(
        diagnostic(keySpanAt(inputs.source, withPath), `stage "${name}": ${problem.message}`, problem.hint),
      )
    const outDir = typeof args.out_dir === "string" ? args.out_dir : undefined
    const outSpan = keySpanAt(
      inputs.source,
      outDir !== undefined ? [...withPath, "out_dir"] : [...base, "uses"],
    )
    const outs = kind
      .outs(args, outDir ?? defaultOutDir(inputs.pipelineName, name))
      .map((o) => ({ value: o, span: outSpan }))
    const deps = kind.deps(args).map((d) => {
      // point at the `with:` entry the dep came from, when one holds exactly this path
      const key = Object.keys(args).find((k) => args[k] === d)
      const span = spanEither(
        inputs.source,
        () => key !== undefined && locate(inputs.source, [...withPath, key]).found,
        spanAt(inputs.source, [...withPath, key ?? ""]),
        withSpan,
      )
      return { value: d, span }
    })
    return { kind, module, with: args, outs, deps: [...moduleDeps, ...deps] }
  } catch (e) {
    if (!(e instanceof KindModuleError)) throw e
    problems.specErrors.push(
      diagnostic(usesSpan, `kind module "${raw.uses}" of stage "${name}": ${e.message}`, e.hint),
    )
    return invalid
  }
}
