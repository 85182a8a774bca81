/**
 * Resolving stages: interpolation, built-in kinds, paths, params, env and the scalar settings, one stage
 * at a time, collecting located diagnostics rather than stopping at the first.
 *
 * A stage's outs (its own, plus those its built-in kind derives from `with:`) are resolved on demand and
 * memoised, because other stages may refer to them (`${stages.prep.outs[0]}`) before or after they appear
 * in the file. A loop of such references is left for the cycle check to report.
 */
import { defaultOutDir, type KindDefinition, kinds } from "../stages/registry.js"
import { parseDuration } from "./duration.js"
import type { Diagnostic } from "./errors.js"
import { interpolate, type Mode, type Reference, type Resolution, referencesIn } from "./interpolate.js"
import type { Resources, Span, StageAction } from "./model.js"
import { getParam, isMapping, type Params, unknownParamHint } from "./params.js"
import { normaliseDep, normaliseOut, type ProjectPaths } from "./paths.js"
import type { Validation } from "./schema.js"
import { describePath, schemaDiagnostics } from "./schema-errors.js"
import {
  diagnostic,
  keySpanAt,
  locate,
  type SourceFile,
  spanAt,
  spanEither,
  spanWithin,
} from "./source-map.js"
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
}

/** What resolving stages needs from the loader. */
export interface StageInputs {
  readonly source: SourceFile
  readonly pipelineName: string
  readonly params: Params
  readonly project: ProjectPaths
  /** the stages as written, in file order */
  readonly stages: ReadonlyMap<string, RawStage>
  /** validates a built-in kind's `with:` (the kinds' schemas are compiled beforehand) */
  readonly validate: (schema: object, data: unknown) => Validation
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

// What other stages can see of a stage: its outs, and what its built-in kind made of `with:`.
interface Products {
  /** every out by index as `${stages.x.outs[i]}` sees it (normalised where valid) */
  readonly indexed: ReadonlyArray<string>
  readonly outs: ReadonlyArray<Placed<string>>
  readonly kind: KindDefinition | undefined
  /** `with:` after interpolation and with defaults, when it is valid */
  readonly with: Readonly<Record<string, unknown>> | undefined
  readonly kindDeps: ReadonlyArray<Placed<string>>
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

  constructor(private readonly inputs: StageInputs) {
    this.names = [...inputs.stages.keys()]
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

  /** The stage's outs and built-in products, resolved once; `undefined` while they are being resolved. */
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

    let kind: KindDefinition | undefined
    let withValue: Readonly<Record<string, unknown>> | undefined
    const kindDeps: Placed<string>[] = []
    if (raw.uses !== undefined) {
      kind = kinds.get(raw.uses)
      if (kind === undefined) {
        this.specErrors.push(
          diagnostic(
            this.at([...base, "uses"]),
            `unknown stage kind "${raw.uses}" in stage "${name}"`,
            suggestion(raw.uses, [...kinds.keys()], {
              listed: "Built-in kinds:",
              none: "There are no built-in kinds.",
            }),
          ),
        )
      } else {
        const withPath = [...base, "with"]
        const interpolated = this.deep(raw.with ?? {}, withPath)
        const validation = this.inputs.validate(kind.schema, interpolated)
        if (validation.errors.length > 0) {
          this.schemaErrors.push(
            ...schemaDiagnostics(validation.errors, this.inputs.source, {
              root: kind.schema,
              prefix: withPath,
              fallback: this.keyAt(raw.with === undefined ? [...base, "uses"] : withPath),
            }),
          )
        } else {
          withValue = validation.value as Readonly<Record<string, unknown>>
          for (const problem of kind.check?.(withValue) ?? [])
            this.specErrors.push(
              diagnostic(this.keyAt(withPath), `stage "${name}": ${problem.message}`, problem.hint),
            )
          const outDir = typeof withValue.out_dir === "string" ? withValue.out_dir : undefined
          const outSpan = this.keyAt(outDir !== undefined ? [...withPath, "out_dir"] : [...base, "uses"])
          for (const o of kind.outs(withValue, outDir ?? defaultOutDir(this.inputs.pipelineName, name)))
            placeOut(o, outSpan)
          for (const d of kind.deps(withValue)) {
            // point at the `with:` entry the dep came from, when one holds exactly this path
            const key = Object.keys(withValue).find((k) => withValue?.[k] === d)
            const span = spanEither(
              this.inputs.source,
              () => key !== undefined && locate(this.inputs.source, [...withPath, key]).found,
              this.at([...withPath, key ?? ""]),
              this.keyAt(raw.with === undefined ? [...base, "uses"] : withPath),
            )
            kindDeps.push({ value: d, span })
          }
        }
      }
    }
    const products: Products = { indexed, outs, kind, with: withValue, kindDeps }
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
    if (products.kind === undefined || products.with === undefined) return undefined
    return { _tag: "Builtin", uses: products.kind.kind, version: products.kind.version, with: products.with }
  }

  private deps(name: string, raw: RawStage, products: Products): ReadonlyArray<Placed<string>> {
    const base = ["stages", name]
    const written: Placed<string>[] = (raw.deps ?? []).map((d, i) => {
      const path = [...base, "deps", i]
      return { value: String(this.text(d, path, "text")), span: this.at(path) }
    })
    return [...written, ...products.kindDeps, ...this.referencedOuts(name, raw)].flatMap(
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

  private params(name: string, raw: RawStage): Readonly<Record<string, unknown>> {
    const used: Array<[string, unknown]> = []
    ;(raw.params ?? []).forEach((p, i) => {
      const found = getParam(this.inputs.params, p)
      if (found.found) used.push([p, found.value])
      else
        this.specErrors.push(
          diagnostic(
            this.at(["stages", name, "params", i]),
            `unknown param "${p}" in stage "${name}"`,
            unknownParamHint(p, this.inputs.params),
          ),
        )
    })
    // A param interpolated anywhere in the stage is used too: its value is already in the fingerprint through
    // the text it was written into, and listing it lets `status` say "param x: 1 -> 2" and the stage read it
    // from PIPELINE_PARAMS.
    const listed = new Set(used.map(([p]) => p))
    const scan = (value: unknown) => {
      if (typeof value === "string") {
        for (const ref of referencesIn(value)) {
          if (ref._tag !== "Param" || listed.has(ref.name)) continue
          const found = getParam(this.inputs.params, ref.name)
          if (!found.found) continue // reported where it is written
          listed.add(ref.name)
          used.push([ref.name, found.value])
        }
      } else if (Array.isArray(value)) value.forEach(scan)
      else if (isMapping(value)) Object.values(value).forEach(scan)
    }
    for (const field of ["cmd", "deps", "outs", "with", "env"] as const) scan(raw[field])
    return Object.fromEntries(used.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
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

  /**
   * The other stages' outs this stage's command, `with:` or `env` refers to: each is a dep, so its content
   * is in the fingerprint (a stage that reads `${stages.clean.outs[0]}` reruns when that file changes).
   */
  private referencedOuts(name: string, raw: RawStage): ReadonlyArray<Placed<string>> {
    const found: Placed<string>[] = []
    const scan = (value: unknown, path: Path) => {
      if (typeof value === "string") {
        for (const ref of referencesIn(value)) {
          if (ref._tag !== "StageOut" || ref.stage === name || !this.inputs.stages.has(ref.stage)) continue
          const out = this.productsOf(ref.stage)?.indexed[ref.index]
          if (out !== undefined)
            found.push({ value: out, span: spanWithin(this.inputs.source, path, ref.raw, 0) })
        }
      } else if (Array.isArray(value)) for (const [i, v] of value.entries()) scan(v, [...path, i])
      else if (isMapping(value)) for (const [k, v] of Object.entries(value)) scan(v, [...path, k])
    }
    for (const field of ["cmd", "with", "env"] as const) scan(raw[field], ["stages", name, field])
    return found
  }

  /** Every `${stages.x.outs[i]}` of a known stage written anywhere in the stage, located. */
  private refs(name: string, raw: RawStage): ReadonlyArray<Placed<string>> {
    const found: Placed<string>[] = []
    const scan = (value: unknown, path: Path) => {
      if (typeof value === "string") {
        const seen = new Map<string, number>()
        for (const ref of referencesIn(value)) {
          const n = seen.get(ref.raw) ?? 0
          seen.set(ref.raw, n + 1)
          if (ref._tag === "StageOut" && this.inputs.stages.has(ref.stage))
            found.push({ value: ref.stage, span: spanWithin(this.inputs.source, path, ref.raw, n) })
        }
      } else if (Array.isArray(value)) for (const [i, v] of value.entries()) scan(v, [...path, i])
      else if (isMapping(value)) for (const [k, v] of Object.entries(value)) scan(v, [...path, k])
    }
    for (const field of ["cmd", "deps", "outs", "with", "env"] as const)
      scan(raw[field], ["stages", name, field])
    return found
  }

  resolve(name: string, raw: RawStage): ResolvedStage {
    const products = this.productsOf(name) ?? {
      indexed: [],
      outs: [],
      kind: undefined,
      with: undefined,
      kindDeps: [],
    }
    return {
      name,
      span: this.keyAt(["stages", name]),
      action: this.action(name, raw, products),
      deps: this.deps(name, raw, products),
      outs: products.outs,
      needs: this.needs(name, raw),
      refs: this.refs(name, raw),
      params: this.params(name, raw),
      env: this.env(name, raw),
      resources: { cpu: raw.resources?.cpu ?? 1, gpu: raw.resources?.gpu ?? 0 },
      retries: raw.retries ?? 0,
      retryDelayMs:
        raw.retry_delay === undefined
          ? DEFAULT_RETRY_DELAY_MS
          : (parseDuration(raw.retry_delay) ?? DEFAULT_RETRY_DELAY_MS),
      timeoutMs: raw.timeout === undefined ? undefined : parseDuration(raw.timeout),
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
