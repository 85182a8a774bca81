/**
 * Resolving stages: interpolation, paths, needs, env and the scalar settings, one stage at a time,
 * collecting located diagnostics rather than stopping at the first. A stage's kind and its `with:` are
 * resolved in `stage-kind.ts`, the params and outs it refers to are found in `stage-references.ts`.
 *
 * A stage's outs (its own, plus those its kind derives from `with:`) are resolved on demand and memoised,
 * because other stages may refer to them (`${stages.prep.outs[0]}`) before or after they appear in the
 * file. A loop of such references is left for the cycle check to report.
 */
import type { KindDefinition } from "../stages/registry.js"
import { parseDuration } from "./duration.js"
import type { Diagnostic } from "./errors.js"
import { interpolate, type Mode, type Reference, type Resolution } from "./interpolate.js"
import type { KindModule } from "./kind-module.js"
import type { Resources, Span, StageAction } from "./model.js"
import { getParam, isMapping, type Params, unknownParamHint } from "./params.js"
import { normaliseDep, normaliseOut, type ProjectPaths } from "./paths.js"
import type { Validation } from "./schema.js"
import { describePath } from "./schema-errors.js"
import { diagnostic, keySpanAt, type SourceFile, spanAt, spanWithin } from "./source-map.js"
import { resolveKind } from "./stage-kind.js"
import { type ReferenceInputs, referencedOuts, stageRefs, usedParams } from "./stage-references.js"
import { suggestion } from "./suggest.js"

/** A stage as written, once the pipeline schema has accepted it. */
export interface RawStage {
  readonly description?: string
  readonly cmd?: string | ReadonlyArray<string>
  readonly uses?: string
  readonly with?: Readonly<Record<string, unknown>>
  readonly deps?: ReadonlyArray<string>
  readonly outs?: ReadonlyArray<string>
  readonly params?: ReadonlyArray<string>
  readonly needs?: ReadonlyArray<string>
  readonly env?: Readonly<Record<string, string | number | boolean>>
  readonly resources?: { readonly cpu?: number; readonly gpu?: number }
  readonly retries?: number
  readonly retry_delay?: number | string
  readonly timeout?: number | string
  readonly shell_quote?: boolean
  readonly scratch?: boolean
}

/** A value together with where it was written. */
export interface Placed<T> {
  readonly value: T
  readonly span: Span
}

/** A stage after resolution; `action` is missing when its `uses`/`with` did not resolve. */
export interface ResolvedStage {
  readonly name: string
  readonly span: Span
  readonly action: StageAction | undefined
  readonly deps: ReadonlyArray<Placed<string>>
  readonly outs: ReadonlyArray<Placed<string>>
  readonly needs: ReadonlyArray<Placed<string>>
  /** every `${stages.<x>.outs[i]}` of a known stage in the stage's strings: each is an edge */
  readonly refs: ReadonlyArray<Placed<string>>
  readonly params: Readonly<Record<string, unknown>>
  readonly env: Readonly<Record<string, string>>
  readonly resources: Resources
  readonly retries: number
  readonly retryDelayMs: number
  readonly timeoutMs: number | undefined
  /** whether it gets a scratch folder: every stage kind, and a command that asks for one */
  readonly scratch: boolean
}

/** What resolving stages needs from the loader. */
export interface StageInputs {
  readonly source: SourceFile
  readonly pipelineName: string
  readonly params: Params
  readonly project: ProjectPaths
  /** the stages as written, in file order */
  readonly stages: ReadonlyMap<string, RawStage>
  /** validates a kind's `with:` (the kinds' schemas are compiled beforehand) */
  readonly validate: (schema: object, data: unknown) => Validation
  /** the kind modules named by `uses:`, loaded */
  readonly kindModules: ReadonlyMap<string, KindModule>
}

/** The outcome: every stage, plus diagnostics split by kind (a bad `with:` is a schema violation). */
export interface StageResolution {
  readonly stages: ReadonlyArray<ResolvedStage>
  readonly specErrors: ReadonlyArray<Diagnostic>
  readonly schemaErrors: ReadonlyArray<Diagnostic>
  /** a stage's outs or `with:` refer to themselves through other stages: only the cycle is worth reporting */
  readonly referenceLoop: boolean
}

type Path = ReadonlyArray<string | number>

// What other stages can see of a stage: its outs, and what its kind made of `with:`.
interface Products {
  /** every out by index as `${stages.x.outs[i]}` sees it (normalised where valid) */
  readonly indexed: ReadonlyArray<string>
  /** false when its kind or `with:` did not resolve, so the outs its kind derives are unknown */
  readonly complete: boolean
  readonly outs: ReadonlyArray<Placed<string>>
  readonly kind: KindDefinition | undefined
  /** a kind module's project-relative path */
  readonly module: string | undefined
  /** `with:` after interpolation and with defaults, when it is valid */
  readonly with: Readonly<Record<string, unknown>> | undefined
  readonly kindDeps: ReadonlyArray<Placed<string>>
}

const NO_PRODUCTS: Products = {
  indexed: [],
  complete: true,
  outs: [],
  kind: undefined,
  module: undefined,
  with: undefined,
  kindDeps: [],
}

const RESERVED_ENV_PREFIX = "PIPELINE_"
const DEFAULT_RETRY_DELAY_MS = 1000

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`

class Resolver {
  readonly specErrors: Diagnostic[] = []
  readonly schemaErrors: Diagnostic[] = []
  referenceLoop = false
  private readonly products = new Map<string, Products>()
  private readonly visiting = new Set<string>()
  private readonly names: ReadonlyArray<string>
  private readonly references: ReferenceInputs

  constructor(private readonly inputs: StageInputs) {
    this.names = [...inputs.stages.keys()]
    this.references = { ...inputs, outsOf: (name) => this.productsOf(name)?.indexed }
  }

  private at(path: Path): Span {
    return spanAt(this.inputs.source, path)
  }

  private keyAt(path: Path): Span {
    return keySpanAt(this.inputs.source, path)
  }

  private resolverFor(path: Path): (ref: Reference) => Resolution {
    return (ref) => {
      if (ref._tag === "Param") {
        const found = getParam(this.inputs.params, ref.name)
        if (found.found) return { ok: true, value: found.value }
        return {
          ok: false,
          message: `unknown param "${ref.name}" in ${describePath(path)}`,
          hint: unknownParamHint(ref.name, this.inputs.params),
        }
      }
      if (!this.inputs.stages.has(ref.stage))
        return {
          ok: false,
          message: `unknown stage "${ref.stage}" in ${describePath(path)}`,
          hint: suggestion(ref.stage, this.names, {
            listed: "Stages:",
            none: "The pipeline has no such stage.",
          }),
        }
      const products = this.productsOf(ref.stage)
      // a loop of references: keep the text; the cycle check names the loop
      if (products === undefined) return { ok: true, value: ref.raw }
      const count = products.indexed.length
      if (ref.index < count) return { ok: true, value: products.indexed[ref.index] }
      // the stage's kind or `with:` is reported where it is written: a reference to its outs would only echo it
      if (!products.complete) return { ok: true, value: ref.raw }
      if (count === 0)
        return {
          ok: false,
          message: `${ref.raw} refers to an out, but stage "${ref.stage}" has no outs`,
          hint: `Declare the file under "outs:" of stage "${ref.stage}" first.`,
        }
      return {
        ok: false,
        message: `${ref.raw} is out of range: stage "${ref.stage}" has ${plural(count, "out")}`,
        hint: `Outs are numbered from 0 in the order they are listed: use ${count === 1 ? "0" : `0 to ${count - 1}`}.`,
      }
    }
  }

  /** Interpolates one string of the file at `path`, reporting its bad references. */
  private text(value: string, path: Path, mode: Mode): unknown {
    const result = interpolate(value, this.resolverFor(path), mode)
    for (const e of result.errors)
      this.specErrors.push(
        diagnostic(spanWithin(this.inputs.source, path, e.raw, e.occurrence), e.message, e.hint),
      )
    return result.value
  }

  private deep(value: unknown, path: Path): unknown {
    if (typeof value === "string") return this.text(value, path, "typed")
    if (Array.isArray(value)) return value.map((v, i) => this.deep(v, [...path, i]))
    if (isMapping(value))
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.deep(v, [...path, k])]))
    return value
  }

  /** The stage's outs and its kind's products, resolved once; `undefined` while they are being resolved. */
  productsOf(name: string): Products | undefined {
    const done = this.products.get(name)
    if (done !== undefined) return done
    if (this.visiting.has(name)) {
      this.referenceLoop = true
      return undefined
    }
    this.visiting.add(name)
    const raw = this.inputs.stages.get(name) ?? {}
    const base = ["stages", name]
    const indexed: string[] = []
    const outs: Placed<string>[] = []
    const placeOut = (written: string, span: Span) => {
      const result = normaliseOut(written, this.inputs.project)
      // a refused out keeps its place in the numbering, so later indexes still mean what they say
      indexed.push(result.ok ? result.path : written)
      if (result.ok) outs.push({ value: result.path, span })
      else
        this.specErrors.push(
          diagnostic(span, `out "${written}" of stage "${name}" ${result.problem}`, result.hint),
        )
    }
    ;(raw.outs ?? []).forEach((o, i) => {
      const path = [...base, "outs", i]
      placeOut(String(this.text(o, path, "text")), this.at(path))
    })

    const use =
      raw.uses === undefined
        ? undefined
        : resolveKind(this.inputs, this, name, { ...raw, uses: raw.uses }, () =>
            this.deep(raw.with ?? {}, [...base, "with"]),
          )
    for (const o of use?.outs ?? []) placeOut(o.value, o.span)
    const products: Products = {
      indexed,
      complete: raw.uses === undefined || use?.with !== undefined,
      outs,
      kind: use?.kind,
      module: use?.module,
      with: use?.with,
      kindDeps: use?.deps ?? [],
    }
    this.products.set(name, products)
    this.visiting.delete(name)
    return products
  }

  private action(name: string, raw: RawStage, products: Products): StageAction | undefined {
    const base = ["stages", name]
    if (raw.cmd !== undefined) {
      const mode: Mode = raw.shell_quote === false ? "text" : "shell"
      const cmd =
        typeof raw.cmd === "string"
          ? [String(this.text(raw.cmd, [...base, "cmd"], mode))]
          : raw.cmd.map((c, i) => String(this.text(c, [...base, "cmd", i], mode)))
      return { _tag: "Command", cmd }
    }
    const { kind, module } = products
    if (kind === undefined || products.with === undefined) return undefined
    return {
      _tag: "Builtin",
      uses: kind.kind,
      version: kind.version,
      with: products.with,
      ...(module === undefined ? {} : { module }),
    }
  }

  private deps(name: string, raw: RawStage, products: Products): ReadonlyArray<Placed<string>> {
    const base = ["stages", name]
    const written: Placed<string>[] = (raw.deps ?? []).map((d, i) => {
      const path = [...base, "deps", i]
      return { value: String(this.text(d, path, "text")), span: this.at(path) }
    })
    return [...written, ...products.kindDeps, ...referencedOuts(this.references, name, raw)].flatMap(
      ({ value, span }) => {
        const result = normaliseDep(value, this.inputs.project)
        if (result.ok) return [{ value: result.path, span }]
        this.specErrors.push(
          diagnostic(span, `dep "${value}" of stage "${name}" ${result.problem}`, result.hint),
        )
        return []
      },
    )
  }

  private needs(name: string, raw: RawStage): ReadonlyArray<Placed<string>> {
    return (raw.needs ?? []).flatMap((n, i) => {
      const span = this.at(["stages", name, "needs", i])
      if (this.inputs.stages.has(n)) return [{ value: n, span }]
      this.specErrors.push(
        diagnostic(
          span,
          `unknown stage "${n}" in "needs" of stage "${name}"`,
          suggestion(n, this.names, { listed: "Stages:", none: "The pipeline has no such stage." }),
        ),
      )
      return []
    })
  }

  private env(name: string, raw: RawStage): Readonly<Record<string, string>> {
    // No prototype: a variable named "__proto__" is set like any other.
    const env: Record<string, string> = Object.create(null)
    for (const [key, value] of Object.entries(raw.env ?? {})) {
      const path = ["stages", name, "env", key]
      if (key.startsWith(RESERVED_ENV_PREFIX)) {
        this.specErrors.push(
          diagnostic(
            this.keyAt(path),
            `environment variable "${key}" in stage "${name}" uses the reserved prefix "${RESERVED_ENV_PREFIX}"`,
            `pipeline sets the ${RESERVED_ENV_PREFIX}* variables itself: choose another name.`,
          ),
        )
        continue
      }
      env[key] = typeof value === "string" ? String(this.text(value, path, "text")) : String(value)
    }
    return env
  }

  resolve(name: string, raw: RawStage): ResolvedStage {
    const products = this.productsOf(name) ?? NO_PRODUCTS
    return {
      name,
      span: this.keyAt(["stages", name]),
      action: this.action(name, raw, products),
      deps: this.deps(name, raw, products),
      outs: products.outs,
      needs: this.needs(name, raw),
      refs: stageRefs(this.references, name, raw),
      params: usedParams(this.references, name, raw, this.specErrors),
      env: this.env(name, raw),
      resources: {
        cpu: raw.resources?.cpu ?? 1,
        gpu: raw.resources?.gpu ?? 0,
        // a kind that computes with TensorFlow.js takes a GPU when the run has one, unless told otherwise
        ...(raw.resources?.gpu === undefined && products.kind?.compute === true
          ? { gpuWhenPresent: true }
          : {}),
      },
      retries: raw.retries ?? 0,
      retryDelayMs:
        raw.retry_delay === undefined
          ? DEFAULT_RETRY_DELAY_MS
          : (parseDuration(raw.retry_delay) ?? DEFAULT_RETRY_DELAY_MS),
      timeoutMs: raw.timeout === undefined ? undefined : parseDuration(raw.timeout),
      scratch: raw.uses !== undefined || raw.scratch === true,
    }
  }
}

/** Resolves every stage; see `StageResolution`. */
export const resolveStages = (inputs: StageInputs): StageResolution => {
  const resolver = new Resolver(inputs)
  const stages = [...inputs.stages].map(([name, raw]) => resolver.resolve(name, raw))
  return {
    stages,
    specErrors: resolver.specErrors,
    schemaErrors: resolver.schemaErrors,
    referenceLoop: resolver.referenceLoop,
  }
}
