/**
 * The stage graph: topological order, cycles, `--only`/`--downstream` selection, and the pictures
 * `pipeline dag` draws. An edge `a -> b` means data flows from a to b: b runs after a.
 */
import { Effect } from "effect"
import { UsageError } from "./errors.js"
import type { Pipeline } from "./model.js"
import { suggestion } from "./suggest.js"

/**
 * Stage names in an order where each comes after all its upstream stages, ties broken by file order
 * (`names` is in file order); or, when there is none, one cycle `[a, b, c, a]` that starts at the
 * earliest stage in file order.
 */
export const topologicalOrder = (
  names: ReadonlyArray<string>,
  upstream: ReadonlyMap<string, ReadonlyArray<string>>,
): { readonly order: ReadonlyArray<string> } | { readonly cycle: ReadonlyArray<string> } => {
  const position = new Map(names.map((n, i) => [n, i]))
  // Kahn's algorithm, always taking the earliest ready stage (a heap of positions). The first version searched
  // the whole list for it on every step: quadratic, ~0.3 s on 4,000 stages. A stage waits for one count per
  // upstream entry, as `dependentsOf` lists one edge per entry (an unknown name never clears, as before).
  const waitingFor = names.map((n) => (upstream.get(n) ?? []).length)
  const downstream = dependentsOf(names, upstream)
  const ready = new MinHeap()
  for (const [i, count] of waitingFor.entries()) if (count === 0) ready.push(i)
  const order: string[] = []
  for (let i = ready.pop(); i !== undefined; i = ready.pop()) {
    const name = names[i]!
    order.push(name)
    for (const d of downstream.get(name) ?? []) {
      const at = position.get(d)!
      if (--waitingFor[at]! === 0) ready.push(at)
    }
  }
  return order.length === names.length ? { order } : { cycle: findCycle(names, upstream, position) }
}

/** A binary min-heap of numbers: a dozen lines, against a dependency for one use. */
class MinHeap {
  private readonly items: number[] = []
  push(x: number): void {
    const a = this.items
    a.push(x)
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1
      if (a[p]! <= a[i]!) break
      ;[a[p], a[i]] = [a[i]!, a[p]!]
      i = p
    }
  }
  pop(): number | undefined {
    const a = this.items
    const top = a[0]
    const last = a.pop()
    if (a.length === 0 || last === undefined) return top
    a[0] = last
    for (let i = 0; ; ) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < a.length && a[l]! < a[m]!) m = l
      if (r < a.length && a[r]! < a[m]!) m = r
      if (m === i) break
      ;[a[m], a[i]] = [a[i]!, a[m]!]
      i = m
    }
    return top
  }
}

const findCycle = (
  names: ReadonlyArray<string>,
  upstream: ReadonlyMap<string, ReadonlyArray<string>>,
  position: ReadonlyMap<string, number>,
): ReadonlyArray<string> => {
  const downstream = dependentsOf(names, upstream)
  const done = new Set<string>()
  const path: string[] = []
  const onPath = new Set<string>()
  const visit = (n: string): ReadonlyArray<string> | undefined => {
    if (onPath.has(n)) return [...path.slice(path.indexOf(n)), n]
    if (done.has(n)) return undefined
    path.push(n)
    onPath.add(n)
    for (const d of downstream.get(n) ?? []) {
      const cycle = visit(d)
      if (cycle !== undefined) return cycle
    }
    path.pop()
    onPath.delete(n)
    done.add(n)
    return undefined
  }
  for (const n of names) {
    const cycle = visit(n)
    if (cycle === undefined) continue
    // rotate so that it starts at its earliest stage: `a -> b -> a`, not `b -> a -> b`
    const ring = cycle.slice(0, -1)
    let first = 0
    ring.forEach((m, i) => {
      if ((position.get(m) ?? 0) < (position.get(ring[first]!) ?? 0)) first = i
    })
    const rotated = [...ring.slice(first), ...ring.slice(0, first)]
    return [...rotated, rotated[0]!]
  }
  return []
}

const dependentsOf = (
  names: ReadonlyArray<string>,
  upstream: ReadonlyMap<string, ReadonlyArray<string>>,
): ReadonlyMap<string, ReadonlyArray<string>> => {
  const result = new Map<string, string[]>(names.map((n) => [n, []]))
  for (const n of names) for (const u of upstream.get(n) ?? []) result.get(u)?.push(n)
  return result
}

/** Each stage's direct downstream stages, in file order. */
export const dependents = (p: Pipeline): ReadonlyMap<string, ReadonlyArray<string>> =>
  dependentsOf([...p.stages.keys()], new Map([...p.stages].map(([n, s]) => [n, s.upstream])))

const closure = (start: ReadonlyArray<string>, next: (n: string) => ReadonlyArray<string>): Set<string> => {
  const seen = new Set<string>()
  const stack = [...start]
  while (stack.length > 0) {
    const n = stack.pop()!
    if (seen.has(n)) continue
    seen.add(n)
    stack.push(...next(n))
  }
  return seen
}

/**
 * The stages a run selects: `only` names stages to run with everything upstream of them; `downstream`
 * names stages to run with everything after them; both together select the union; neither selects all.
 */
export const selectStages = (
  p: Pipeline,
  sel: { readonly only?: ReadonlyArray<string>; readonly downstream?: ReadonlyArray<string> },
): Effect.Effect<ReadonlySet<string>, UsageError> =>
  Effect.suspend(() => {
    const names = [...p.stages.keys()]
    const only = sel.only ?? []
    const down = sel.downstream ?? []
    for (const [flag, list] of [
      ["--only", only],
      ["--downstream", down],
    ] as const) {
      const unknown = list.find((n) => !p.stages.has(n))
      if (unknown !== undefined)
        return Effect.fail(
          new UsageError({
            message: `${flag}: unknown stage "${unknown}"`,
            hint: suggestion(unknown, names, { listed: "Stages:", none: "The pipeline has no stages." }),
          }),
        )
    }
    if (only.length === 0 && down.length === 0) return Effect.succeed(new Set(names))
    const after = dependents(p)
    const up = closure(only, (n) => p.stages.get(n)?.upstream ?? [])
    const downSet = closure(down, (n) => after.get(n) ?? [])
    // keep file order, so that whoever iterates the set sees a stable order
    return Effect.succeed(new Set(names.filter((n) => up.has(n) || downSet.has(n))))
  })

const edges = (p: Pipeline): ReadonlyArray<readonly [string, string]> =>
  p.order.flatMap((n) => (p.stages.get(n)?.upstream ?? []).map((u) => [u, n] as const))

/** The graph as a Mermaid flowchart. */
export const toMermaid = (p: Pipeline): string => {
  const id = new Map(p.order.map((n, i) => [n, `s${i}`]))
  // Mermaid ids cannot hold every stage name (dots, dashes): number the nodes and label them
  const label = (n: string) => n.replace(/"/g, "#quot;")
  return [
    "flowchart LR",
    ...p.order.map((n) => `  ${id.get(n)}["${label(n)}"]`),
    ...edges(p).map(([a, b]) => `  ${id.get(a)} --> ${id.get(b)}`),
  ].join("\n")
}

/** The graph in Graphviz DOT. */
export const toDot = (p: Pipeline): string => {
  const q = (s: string) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`
  return [
    `digraph ${q(p.name)} {`,
    "  rankdir=LR",
    "  node [shape=box]",
    ...p.order.map((n) => `  ${q(n)}`),
    ...edges(p).map(([a, b]) => `  ${q(a)} -> ${q(b)}`),
    "}",
  ].join("\n")
}

/** The graph as plain text: stages in run order, each with the stages it waits for. */
export const toText = (p: Pipeline): string => {
  const width = Math.max(0, ...p.order.map((n) => n.length))
  const count = p.order.length === 1 ? "1 stage" : `${p.order.length} stages`
  return [
    `${p.name} (${count})`,
    ...p.order.map((n) => {
      const up = p.stages.get(n)?.upstream ?? []
      return up.length === 0 ? `  ${n}` : `  ${n.padEnd(width)}  <- ${up.join(", ")}`
    }),
  ].join("\n")
}
