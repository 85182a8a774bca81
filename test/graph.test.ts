import { Effect, Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { dependents, selectStages, toDot, toMermaid, topologicalOrder, toText } from "../src/graph.js"
import type { Pipeline, Stage } from "../src/model.js"

/** A pipeline of command stages with the given upstream lists, in this order (file order = order here). */
const pipeline = (
  upstream: Readonly<Record<string, ReadonlyArray<string>>>,
  order?: ReadonlyArray<string>,
): Pipeline => {
  const names = Object.keys(upstream)
  const stage = (name: string, line: number): Stage => ({
    name,
    action: { _tag: "Command", cmd: ["true"] },
    deps: [],
    outs: [],
    params: {},
    needs: [],
    upstream: upstream[name] ?? [],
    env: {},
    resources: { cpu: 1, gpu: 0 },
    retries: 0,
    retryDelayMs: 1000,
    timeoutMs: undefined,
    scratch: false,
    span: { file: "pipeline.yaml", line, column: 3, endLine: line, endColumn: 3 + name.length },
  })
  return {
    name: "demo",
    file: "/p/pipeline.yaml",
    sources: ["/p/pipeline.yaml"],
    root: "/p",
    params: {},
    stages: new Map(names.map((n, i) => [n, stage(n, i + 2)])),
    order: order ?? names,
  }
}

// prepare -> train -> evaluate, prepare -> evaluate; report alone
const p = pipeline({ prepare: [], train: ["prepare"], evaluate: ["prepare", "train"], report: [] }, [
  "prepare",
  "train",
  "evaluate",
  "report",
])

const select = (sel: Parameters<typeof selectStages>[1]) =>
  Effect.runSync(Effect.either(selectStages(p, sel)))

describe("topologicalOrder", () => {
  it("puts upstream first and breaks ties by file order", () => {
    const upstream = new Map([
      ["d", ["c"]],
      ["c", []],
      ["b", []],
      ["a", ["b"]],
    ])
    expect(topologicalOrder(["d", "c", "b", "a"], upstream)).toEqual({ order: ["c", "d", "b", "a"] })
  })

  it("names a cycle starting at its earliest stage in file order", () => {
    const upstream = new Map([
      ["x", []],
      ["a", ["c"]],
      ["b", ["a"]],
      ["c", ["b"]],
    ])
    expect(topologicalOrder(["x", "b", "a", "c"], upstream)).toEqual({ cycle: ["b", "c", "a", "b"] })
    expect(topologicalOrder(["s"], new Map([["s", ["s"]]]))).toEqual({ cycle: ["s", "s"] })
  })

  it("takes the earliest ready stage at every step, as the definition says (random graphs, seeded)", () => {
    /** The definition, quadratic: repeatedly the first stage in file order whose upstream are all placed. */
    const byDefinition = (
      names: ReadonlyArray<string>,
      upstream: ReadonlyMap<string, ReadonlyArray<string>>,
    ) => {
      const order: string[] = []
      const placed = new Set<string>()
      while (order.length < names.length) {
        const next = names.find((n) => !placed.has(n) && (upstream.get(n) ?? []).every((u) => placed.has(u)))
        if (next === undefined) return undefined
        order.push(next)
        placed.add(next)
      }
      return order
    }
    const graphs = fc.integer({ min: 1, max: 30 }).chain((n) =>
      fc.tuple(
        fc.constant(n),
        // each stage's upstream: indexes, duplicates allowed, some pointing at no stage, a few at later ones
        fc.array(fc.array(fc.integer({ min: 0, max: n + 2 }), { maxLength: 4 }), {
          minLength: n,
          maxLength: n,
        }),
        fc.boolean(),
      ),
    )
    fc.assert(
      fc.property(graphs, ([n, ups, acyclic]) => {
        const names = Array.from({ length: n }, (_, i) => `s${(i * 7) % n}-${i}`)
        const upstream = new Map(
          names.map((name, i) => [
            name,
            ups[i]!.filter((u) => !acyclic || u < i).map((u) => names[u] ?? `missing${u}`),
          ]),
        )
        const expected = byDefinition(names, upstream)
        const got = topologicalOrder(names, upstream)
        if (expected === undefined) expect(got).toHaveProperty("cycle")
        else expect(got).toEqual({ order: expected })
      }),
      { seed: 20261129, numRuns: 500 },
    )
  })
})

describe("selectStages", () => {
  it("selects everything by default", () => {
    expect(select({})).toEqual(Either.right(new Set(["prepare", "train", "evaluate", "report"])))
  })

  it("--only selects the stages and everything upstream", () => {
    expect(select({ only: ["train"] })).toEqual(Either.right(new Set(["prepare", "train"])))
    expect(select({ only: ["evaluate"] })).toEqual(Either.right(new Set(["prepare", "train", "evaluate"])))
  })

  it("--downstream selects the stages and everything after", () => {
    expect(select({ downstream: ["train"] })).toEqual(Either.right(new Set(["train", "evaluate"])))
  })

  it("unites both", () => {
    expect(select({ only: ["report"], downstream: ["train"] })).toEqual(
      Either.right(new Set(["train", "evaluate", "report"])),
    )
  })

  it("refuses unknown stages with a suggestion", () => {
    const result = select({ only: ["trian"] })
    if (Either.isRight(result)) throw new Error("expected a usage error")
    expect([result.left.message, result.left.hint]).toEqual([
      '--only: unknown stage "trian"',
      'Did you mean "train"?',
    ])
    const other = select({ downstream: ["zzz"] })
    if (Either.isRight(other)) throw new Error("expected a usage error")
    expect(other.left.hint).toBe('Stages: "prepare", "train", "evaluate", "report".')
  })
})

describe("dependents", () => {
  it("lists direct downstream stages in file order", () => {
    expect(dependents(p)).toEqual(
      new Map([
        ["prepare", ["train", "evaluate"]],
        ["train", ["evaluate"]],
        ["evaluate", []],
        ["report", []],
      ]),
    )
  })
})

describe("pictures", () => {
  it("draws text", () => {
    expect(toText(p)).toBe(
      [
        "demo (4 stages)",
        "  prepare",
        "  train     <- prepare",
        "  evaluate  <- prepare, train",
        "  report",
      ].join("\n"),
    )
  })

  it("draws Mermaid", () => {
    expect(toMermaid(p)).toBe(
      [
        "flowchart LR",
        '  s0["prepare"]',
        '  s1["train"]',
        '  s2["evaluate"]',
        '  s3["report"]',
        "  s0 --> s1",
        "  s0 --> s2",
        "  s1 --> s2",
      ].join("\n"),
    )
  })

  it("draws DOT", () => {
    expect(toDot(pipeline({ "a.b": [], 'say "hi"': ["a.b"] }))).toBe(
      [
        'digraph "demo" {',
        "  rankdir=LR",
        "  node [shape=box]",
        '  "a.b"',
        '  "say \\"hi\\""',
        '  "a.b" -> "say \\"hi\\""',
        "}",
      ].join("\n"),
    )
  })
})
