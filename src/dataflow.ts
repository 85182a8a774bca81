/**
 * How files flow between stages: which stage owns which out, which deps those outs feed (the graph's
 * edges), and the mistakes only visible across stages: two stages writing one path, outs nested in outs,
 * a stage reading what it writes, and deps nobody provides.
 */
import { existsSync } from "node:fs"
import { isAbsolute, join } from "node:path"
import type { Diagnostic } from "./errors.js"
import type { Span } from "./model.js"
import { within } from "./paths.js"
import { diagnostic } from "./source-map.js"
import type { Placed, ResolvedStage } from "./stage-resolve.js"

/** An edge of the stage graph: `from` runs before `to`, for the reason `why`, written at `span`. */
export interface Edge {
  readonly from: string
  readonly to: string
  readonly why: string
  readonly span: Span
}

/** The edges, every stage's sorted upstream stages, and the problems found. */
export interface Dataflow {
  readonly edges: ReadonlyArray<Edge>
  readonly upstream: ReadonlyMap<string, ReadonlyArray<string>>
  readonly diagnostics: ReadonlyArray<Diagnostic>
}

/** `file:line:col`, for messages that mention a second place. */
export const where = (span: Span): string => `${span.file}:${span.line}:${span.column}`

interface Owned {
  readonly stage: string
  readonly out: Placed<string>
  /** position in file order over all stages' outs */
  readonly order: number
}

/** `a/b/c` -> `a`, `a/b` (the folders a path lies in). */
const ancestors = (path: string): string[] => {
  const parts = path.split("/")
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join("/"))
}

/**
 * Outs indexed for the overlap questions (is a path an out, inside one, or holding some), so a pipeline of
 * n stages is checked in O(n · depth) rather than by comparing every pair.
 */
class OutIndex {
  private readonly exact = new Map<string, Owned[]>()
  private readonly under = new Map<string, Owned[]>()

  constructor(owned: ReadonlyArray<Owned>) {
    for (const o of owned) {
      push(this.exact, o.out.value, o)
      for (const dir of ancestors(o.out.value)) push(this.under, dir, o)
    }
  }

  /** Outs equal to `path`, containing it, or inside it; in file order. */
  overlapping(path: string): Owned[] {
    const found = [
      ...(this.exact.get(path) ?? []),
      ...ancestors(path).flatMap((dir) => this.exact.get(dir) ?? []),
      ...(this.under.get(path) ?? []),
    ]
    return found.sort((a, b) => a.order - b.order)
  }
}

const push = <K, V>(map: Map<K, V[]>, key: K, value: V): void => {
  const list = map.get(key)
  if (list) list.push(value)
  else map.set(key, [value])
}

const outDiagnostics = (owned: ReadonlyArray<Owned>): Diagnostic[] => {
  const diagnostics: Diagnostic[] = []
  const first = new Map<string, Owned>()
  const distinct: Owned[] = []
  for (const o of owned) {
    const earlier = first.get(o.out.value)
    if (earlier === undefined) {
      first.set(o.out.value, o)
      distinct.push(o)
    } else if (earlier.stage === o.stage) {
      diagnostics.push(
        diagnostic(
          o.out.span,
          `out "${o.out.value}" is listed twice in stage "${o.stage}" (first at ${where(earlier.out.span)})`,
          "Remove the repeated entry.",
        ),
      )
    } else {
      diagnostics.push(
        diagnostic(
          o.out.span,
          `out "${o.out.value}" of stage "${o.stage}" is also an out of stage "${earlier.stage}" (${where(earlier.out.span)})`,
          "Each path can be written by one stage only: rename one of the outs, or merge the two stages.",
        ),
      )
    }
  }
  // Nested outs: the stage owning the outer path replaces it whole on every run or restore, taking the inner
  // one with it. Report each pair once, at the one written later.
  const index = new OutIndex(distinct)
  for (const a of distinct)
    for (const b of index.overlapping(a.out.value)) {
      if (a === b || !within(b.out.value, a.out.value) || a.out.value === b.out.value) continue
      const [later, earlier] = a.order > b.order ? [a, b] : [b, a]
      const relation = later === b ? "is inside" : "contains"
      const other =
        earlier.stage === later.stage
          ? "another out"
          : `out "${earlier.out.value}" of stage "${earlier.stage}"`
      const otherPath = earlier.stage === later.stage ? ` "${earlier.out.value}"` : ""
      diagnostics.push(
        diagnostic(
          later.out.span,
          `out "${later.out.value}" of stage "${later.stage}" ${relation} ${other}${otherPath} (${where(earlier.out.span)})`,
          "Outs may not overlap, because a stage replaces its outs whole: choose paths side by side, not one inside the other.",
        ),
      )
    }
  return diagnostics
}

/** Computes edges and checks outs and deps across stages; `root` is the project root (for existence checks). */
export const dataflow = (stages: ReadonlyArray<ResolvedStage>, root: string): Dataflow => {
  const owned: ReadonlyArray<Owned> = stages
    .flatMap((s) => s.outs.map((out) => ({ stage: s.name, out })))
    .map((o, order) => ({ ...o, order }))
  const diagnostics = outDiagnostics(owned)
  const index = new OutIndex(owned)
  const edges: Edge[] = []
  // `why` is read only to explain a cycle: built on demand, so the spans it names stay unparsed otherwise.
  const edge = (from: string, to: string, span: Span, why: () => string): Edge => ({
    from,
    to,
    span,
    get why() {
      return why()
    },
  })

  for (const stage of stages) {
    for (const dep of stage.deps) {
      if (isAbsolute(dep.value)) {
        if (!existsSync(dep.value))
          diagnostics.push(
            diagnostic(
              dep.span,
              `dep "${dep.value}" of stage "${stage.name}" does not exist`,
              "Fix the path, or create the file: an absolute dep is a read-only input outside the project.",
            ),
          )
        continue
      }
      let provided = false
      for (const o of index.overlapping(dep.value)) {
        const inside = within(dep.value, o.out.value)
        const holds = within(o.out.value, dep.value)
        if (!inside && !holds) continue
        provided = true
        if (o.stage === stage.name) {
          diagnostics.push(
            diagnostic(
              dep.span,
              dep.value === o.out.value
                ? `dep "${dep.value}" of stage "${stage.name}" is also one of its outs`
                : `dep "${dep.value}" of stage "${stage.name}" ${inside ? "is inside" : "contains"} its own out "${o.out.value}"`,
              "A stage cannot read what it writes (its fingerprint would change with every run): depend on its inputs only.",
            ),
          )
          continue
        }
        edges.push(
          edge(o.stage, stage.name, dep.span, () =>
            inside
              ? `"${stage.name}" reads "${dep.value}", an out of "${o.stage}" (${where(dep.span)})`
              : `"${stage.name}" reads "${dep.value}", which holds an out of "${o.stage}" (${where(dep.span)})`,
          ),
        )
      }
      if (!provided && !existsSync(join(root, dep.value)))
        diagnostics.push(
          diagnostic(
            dep.span,
            `dep "${dep.value}" of stage "${stage.name}" does not exist, and no stage writes it`,
            "Fix the path, create the file, or add it to the outs of the stage that produces it.",
          ),
        )
    }
    for (const ref of stage.refs)
      edges.push(
        edge(
          ref.value,
          stage.name,
          ref.span,
          () => `"${stage.name}" refers to an out of "${ref.value}" (${where(ref.span)})`,
        ),
      )
    for (const need of stage.needs)
      edges.push(
        edge(
          need.value,
          stage.name,
          need.span,
          () => `"${stage.name}" needs "${need.value}" (${where(need.span)})`,
        ),
      )
  }

  const into = new Map<string, Set<string>>(stages.map((s) => [s.name, new Set()]))
  for (const e of edges) into.get(e.to)?.add(e.from)
  const upstream = new Map<string, ReadonlyArray<string>>(
    stages.map((s) => [s.name, [...(into.get(s.name) ?? [])].sort()]),
  )
  return { edges, upstream, diagnostics }
}
