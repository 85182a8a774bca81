/**
 * The pipeline spec loader: pipeline YAML in, a resolved `Pipeline` (model.ts) out, or every problem found,
 * located in the file. The phases, each reporting all its problems before the next runs:
 *
 *   1. YAML syntax (duplicate keys included)          -> PipelineSyntaxError
 *   2. the pipeline schema, and cmd-xor-uses           -> SchemaViolation
 *   3. params: params_file, then --set                 -> PipelineSyntaxError | SpecError | UsageError
 *   4. stages: kind modules, interpolation, kinds'
 *      `with:`, paths, params, needs, env; outs and
 *      deps across stages                              -> SchemaViolation (a bad `with:`) | SpecError
 *   5. the graph                                       -> CycleDetected
 *
 * The loader reads files and never writes any. It does import the kind modules that `uses:` names
 * (`kind-module.ts`), which run their top level.
 */
import { readFileSync } from "node:fs"
import { basename, dirname, resolve } from "node:path"
import { Effect, Either } from "effect"
import { isMap, isScalar } from "yaml"
import { kinds } from "../stages/registry.js"
import { dataflow, type Edge } from "./dataflow.js"
import {
  CycleDetected,
  type Diagnostic,
  type PipelineInvalid,
  PipelineSyntaxError,
  SchemaViolation,
  SpecError,
  UsageError,
} from "./errors.js"
import { topologicalOrder } from "./graph.js"
import { isKindModule, loadKindModules } from "./kind-module.js"
import type { Pipeline, Span, Stage } from "./model.js"
import { applySets, isMapping, overrideParams, type Params } from "./params.js"
import type { ParseCache } from "./parse-cache.js"
import { findProjectRoot, lockFileFor } from "./pipeline-file.js"
import { pipelineSchema, stageKeys, validate, validators } from "./schema.js"
import { schemaDiagnostics, stageShapeDiagnostics } from "./schema-errors.js"
import {
  cachedSource,
  diagnostic,
  displayPath,
  invalidUtf8,
  locate,
  parseSource,
  type SourceFile,
  spanAt,
  spanOfFile,
} from "./source-map.js"
import { type RawStage, resolveStages } from "./stage-resolve.js"

/** What to load, and how. */
export interface LoadOptions {
  /** absolute path of the pipeline file */
  readonly file: string
  /** the working directory: diagnostics name files relative to it */
  readonly cwd: string
  /** the project root; default: found from the pipeline file (see `findProjectRoot`) */
  readonly root?: string
  /** raw `--set NAME=VALUE` arguments, applied in order */
  readonly sets?: ReadonlyArray<string>
  /** reuse the data of files parsed before (the CLI keeps it under `.pipeline/cache/parsed`) */
  readonly parseCache?: ParseCache
}

interface RawPipeline {
  readonly name?: string
  readonly description?: string
  readonly params?: Params
  readonly params_file?: string
  readonly stages: Readonly<Record<string, RawStage>>
}

const byPlace = (a: Diagnostic, b: Diagnostic): number =>
  a.file === b.file ? a.line - b.line || a.column - b.column : a.file < b.file ? -1 : 1

const sorted = (diagnostics: ReadonlyArray<Diagnostic>): ReadonlyArray<Diagnostic> =>
  [...diagnostics].sort(byPlace)

/** Reads and parses a YAML (or JSON) file; a file that cannot be read is a usage error. */
const readSource = (
  file: string,
  cwd: string,
  cache: ParseCache | undefined,
): Effect.Effect<SourceFile, UsageError | PipelineSyntaxError> =>
  Effect.gen(function* () {
    const display = displayPath(file, cwd)
    const bytes = yield* Effect.try({
      try: () => readFileSync(file),
      catch: (e) =>
        new UsageError({
          message: `cannot read ${display}: ${e instanceof Error && "code" in e ? String(e.code) : String(e)}`,
          hint: "Check the path and the file's permissions.",
        }),
    })
    const encoding = invalidUtf8(file, display, bytes)
    if (encoding !== undefined) return yield* new PipelineSyntaxError({ diagnostics: [encoding] })
    const text = bytes.toString("utf8")
    const cached = cache?.get(file, text)
    if (cached !== undefined) return cachedSource(file, display, text, cached)
    const { source, errors } = parseSource(file, display, text)
    if (errors.length > 0) return yield* new PipelineSyntaxError({ diagnostics: errors })
    cache?.set(file, text, source.value)
    return source
  })

/** The params: defaults, then the params file, then `--set`. */
const resolveParams = (
  raw: RawPipeline,
  source: SourceFile,
  opts: LoadOptions,
): Effect.Effect<Params, PipelineSyntaxError | SpecError | UsageError> =>
  Effect.gen(function* () {
    let params: Params = raw.params ?? {}
    if (raw.params_file !== undefined) {
      const file = resolve(dirname(opts.file), raw.params_file)
      const paramsSource = yield* readSource(file, opts.cwd, opts.parseCache).pipe(
        Effect.catchTag("UsageError", () =>
          Effect.fail(
            new SpecError({
              diagnostics: [
                diagnostic(
                  spanAt(source, ["params_file"]),
                  `params file "${raw.params_file}" cannot be read`,
                  `Its path is relative to the folder of ${basename(opts.file)}: fix the path or create the file.`,
                ),
              ],
            }),
          ),
        ),
      )
      const values = paramsSource.value ?? {}
      if (!isMapping(values))
        return yield* new SpecError({
          diagnostics: [
            diagnostic(
              spanOfFile(paramsSource),
              "a params file must be a mapping of param names to values",
              'Write it like the "params:" of the pipeline, for example "lr: 0.001".',
            ),
          ],
        })
      const merged = overrideParams(params, values, paramsSource)
      if (merged.diagnostics.length > 0)
        return yield* new SpecError({ diagnostics: sorted(merged.diagnostics) })
      params = merged.params
    }
    const set = applySets(params, opts.sets ?? [])
    if (Either.isLeft(set)) return yield* set.left
    return set.right
  })

// Object.entries would move integer-like names ("1", "2") first: then take the order from the document.
const stagesInFileOrder = (raw: RawPipeline, source: SourceFile): ReadonlyMap<string, RawStage> => {
  if (!Object.keys(raw.stages).some((n) => /^\d+$/.test(n))) return new Map(Object.entries(raw.stages))
  const node = locate(source, ["stages"]).value
  const names = isMap(node) ? node.items.map((p) => String(isScalar(p.key) ? p.key.value : p.key)) : []
  return new Map(names.filter((n) => Object.hasOwn(raw.stages, n)).map((n) => [n, raw.stages[n]!]))
}

const cycleError = (
  cycle: ReadonlyArray<string>,
  edges: ReadonlyArray<Edge>,
  spans: ReadonlyMap<string, Span>,
) => {
  const along = cycle.slice(1).map((to, i) => edges.find((e) => e.from === cycle[i] && e.to === to))
  const reasons = along.flatMap((e) => (e === undefined ? [] : [e.why]))
  return new CycleDetected({
    cycle,
    diagnostics: [
      diagnostic(
        spans.get(cycle[0]!)!,
        `dependency cycle: ${cycle.join(" -> ")}`,
        `Stages cannot wait for each other in a circle; remove one of these dependencies: ${reasons.join("; ")}.`,
      ),
    ],
  })
}

/** Loads, validates and resolves a pipeline file. Reads files; writes nothing. */
export const loadPipeline = (opts: LoadOptions): Effect.Effect<Pipeline, PipelineInvalid> =>
  Effect.gen(function* () {
    const source = yield* readSource(opts.file, opts.cwd, opts.parseCache)
    const data: unknown = source.value
    if (!isMapping(data))
      return yield* new SchemaViolation({
        diagnostics: [
          diagnostic(
            spanOfFile(source),
            data === null || data === undefined
              ? "the pipeline file is empty"
              : `the pipeline file must be a mapping, not ${Array.isArray(data) ? "a list" : `a ${typeof data}`}`,
            'A pipeline is a mapping with at least a "stages:" key; see the "Pipeline YAML reference" in the README.',
          ),
        ],
      })

    const validation = yield* validate(pipelineSchema, data)
    const schemaErrors = [
      ...schemaDiagnostics(validation.errors, source, { root: pipelineSchema }),
      ...stageShapeDiagnostics(data.stages, source, stageKeys),
    ]
    if (schemaErrors.length > 0) return yield* new SchemaViolation({ diagnostics: sorted(schemaErrors) })
    const raw = data as unknown as RawPipeline

    const root = opts.root ?? findProjectRoot(opts.file, undefined)
    const name = raw.name ?? basename(opts.file).replace(/\.[^.]*$/, "")
    const params = yield* resolveParams(raw, source, opts)
    const rawStages = stagesInFileOrder(raw, source)

    const used = [...new Set([...rawStages.values()].flatMap((s) => (s.uses === undefined ? [] : [s.uses])))]
    const kindModules = yield* Effect.promise(() =>
      loadKindModules(used, { pipelineFile: opts.file, root, cwd: opts.cwd }),
    )
    const validateWith = yield* validators(
      used.flatMap((u) => (isKindModule(u) ? [] : (kinds.get(u)?.schema ?? []))),
      [...kindModules.values()].flatMap((m) => (m.ok ? [m.kind.schema] : [])),
    )
    const resolution = resolveStages({
      source,
      pipelineName: name,
      params,
      project: { root, pipelineFile: opts.file, lockFile: lockFileFor(opts.file), links: new Map() },
      stages: rawStages,
      validate: validateWith,
      kindModules,
    })
    const flow = dataflow(resolution.stages, root)

    // A loop of references leaves some values unresolved; the errors they cause would only be echoes.
    if (!resolution.referenceLoop) {
      const specErrors = [...resolution.specErrors, ...flow.diagnostics]
      if (resolution.schemaErrors.length > 0)
        return yield* new SchemaViolation({
          diagnostics: sorted([...resolution.schemaErrors, ...specErrors]),
        })
      if (specErrors.length > 0) return yield* new SpecError({ diagnostics: sorted(specErrors) })
    }

    const names = [...rawStages.keys()]
    const graph = topologicalOrder(names, flow.upstream)
    if ("cycle" in graph)
      return yield* cycleError(
        graph.cycle,
        flow.edges,
        new Map(resolution.stages.map((s) => [s.name, s.span])),
      )

    const stages = new Map<string, Stage>()
    for (const s of resolution.stages) {
      if (s.action === undefined)
        return yield* Effect.die(new Error(`stage "${s.name}" resolved without an action`))
      stages.set(s.name, {
        name: s.name,
        action: s.action,
        deps: [...new Set(s.deps.map((d) => d.value))].sort(),
        outs: s.outs.map((o) => o.value),
        params: s.params,
        needs: rawStages.get(s.name)?.needs ?? [],
        upstream: flow.upstream.get(s.name) ?? [],
        env: s.env,
        resources: s.resources,
        retries: s.retries,
        retryDelayMs: s.retryDelayMs,
        scratch: s.scratch,
        timeoutMs: s.timeoutMs,
        span: s.span,
      })
    }
    const sources =
      raw.params_file === undefined ? [opts.file] : [opts.file, resolve(dirname(opts.file), raw.params_file)]
    return { name, file: opts.file, sources, root, params, stages, order: graph.order }
  })
