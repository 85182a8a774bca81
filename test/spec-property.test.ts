// biome-ignore-all lint/suspicious/noTemplateCurlyInString: pipeline strings use ${...} references
/**
 * Property tests of the loader: whatever text or data a pipeline file holds, `loadPipeline` ends with a valid
 * pipeline or with one of the tagged `PipelineInvalid` errors, which renders; it never throws anything else
 * (an Effect defect), never hangs, and writes nothing. Inputs: arbitrary strings, YAML-ish token soup, and
 * random pipeline objects (right and wrong keys, types, paths and references) serialised to YAML, each with
 * random `--set` arguments. Seeds are fixed, so a failure reproduces.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit } from "effect"
import fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import { stringify } from "yaml"
import { invalidToJson, renderInvalid } from "../src/diagnostic.js"
import { loadPipeline } from "../src/spec.js"

const project = mkdtempSync(join(tmpdir(), "pipeline-property-"))
mkdirSync(join(project, ".git"))
mkdirSync(join(project, "data"))
writeFileSync(join(project, "data", "a.txt"), "a\n")
writeFileSync(join(project, "params.yaml"), "lr: 0.5\n")
writeFileSync(join(project, "pipeline.yaml"), "")
afterAll(() => rmSync(project, { recursive: true, force: true }))

const TAGS = new Set(["PipelineSyntaxError", "SchemaViolation", "SpecError", "CycleDetected", "UsageError"])
/**
 * A case slower than this counts as a hang (an input that makes loading loop or blow up). Generous: a case
 * takes milliseconds, and CI's two cores also run the rest of the suite.
 */
const CASE_MS = 10_000
const file = join(project, "pipeline.yaml")

/** Load `text` with `sets`: resolves to a description of the outcome, or rejects on anything not allowed. */
const outcome = async (text: string | Uint8Array, sets: ReadonlyArray<string>): Promise<string> => {
  writeFileSync(file, text)
  const started = Date.now()
  const load = Effect.runPromiseExit(loadPipeline({ file, cwd: project, root: project, sets }))
  let timer: NodeJS.Timeout | undefined
  const exit = await Promise.race([
    load,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer after ${CASE_MS} ms`)), CASE_MS)
    }),
  ]).finally(() => clearTimeout(timer))
  if (Date.now() - started > CASE_MS) throw new Error(`took ${Date.now() - started} ms`)
  if (Exit.isSuccess(exit)) {
    const p = exit.value
    expect(p.stages.size).toBeGreaterThan(0)
    expect([...p.order].sort()).toEqual([...p.stages.keys()].sort())
    return "valid"
  }
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") throw new Error(`a defect, not a tagged error:\n${Cause.pretty(exit.cause)}`)
  const e = failure.value
  if (!TAGS.has(e._tag)) throw new Error(`an untagged failure: ${String(e)}`)
  // Every error renders, as text and as JSON, with a place and a hint.
  expect(renderInvalid(e, { cwd: project }).length).toBeGreaterThan(0)
  for (const d of invalidToJson(e).errors) {
    expect(typeof d.message).toBe("string")
    expect(d.line).toBeGreaterThanOrEqual(0)
  }
  return e._tag
}

// --- generators

const name = fc.constantFrom("a", "b", "train", "prepare", "constructor", "__proto__", "1", "x.y", "-bad", "")
const paramName = fc.constantFrom("lr", "train", "train.lr", "epochs", "dir", "hasOwnProperty", "nope")
const path = fc.oneof(
  fc.constantFrom(
    "a.txt",
    "data/a.txt",
    "data",
    "out/x.txt",
    "out",
    "../x",
    "/tmp/x",
    ".pipeline/x",
    ".git/x",
  ),
  fc.constantFrom(
    "pipeline.yaml",
    "pipeline.lock",
    ".",
    "",
    "a//b/./c/",
    "${params.dir}/m.txt",
    "out/${params.lr}",
  ),
  fc.constantFrom("${stages.a.outs[0]}", "${stages.b.outs[1]}", "${stages.nope.outs[0]}", "${params.nope}"),
)
const text = fc.oneof(
  fc.string(),
  fc.constantFrom("echo hi", "cat ${stages.a.outs[0]} > b.txt", "echo ${params.lr}", "echo $${x} ${HOME}"),
  fc.constantFrom(
    "echo ${params.train}",
    "echo ${params.}",
    "echo ${stages.a.outs}",
    "echo ${",
    "$$${params.lr}",
  ),
)
const scalar = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null))
const params = fc.dictionary(
  fc.constantFrom("lr", "train", "epochs", "dir", "__proto__", "hasOwnProperty", "a.b", "x y"),
  fc.oneof(scalar, fc.dictionary(fc.constantFrom("lr", "epochs", "batch"), scalar, { maxKeys: 3 })),
  { maxKeys: 4 },
)
/** Mostly the right type, sometimes anything at all. */
const maybe = <T>(arb: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 5, arbitrary: arb }, { weight: 1, arbitrary: fc.anything({ maxDepth: 2, maxKeys: 3 }) })
const stage = fc.record(
  {
    cmd: maybe(fc.oneof(text, fc.array(text, { maxLength: 3 }))),
    uses: maybe(fc.constantFrom("word-count", "wordcount", "nope")),
    with: maybe(
      fc.record(
        { input: path, top: fc.oneof(fc.integer(), fc.constant("${params.epochs}")), topp: fc.integer() },
        { requiredKeys: [] },
      ),
    ),
    deps: maybe(fc.array(path, { maxLength: 3 })),
    outs: maybe(fc.array(path, { maxLength: 3 })),
    params: maybe(fc.array(paramName, { maxLength: 3 })),
    needs: maybe(fc.array(name, { maxLength: 2 })),
    env: maybe(
      fc.dictionary(fc.constantFrom("A", "PIPELINE_X", "1x", "__proto__"), fc.oneof(text, fc.integer()), {
        maxKeys: 2,
      }),
    ),
    resources: maybe(
      fc.record(
        { cpu: fc.integer({ min: -2, max: 4 }), gpu: fc.integer({ min: -1, max: 2 }) },
        { requiredKeys: [] },
      ),
    ),
    retries: maybe(fc.integer({ min: -1, max: 3 })),
    retry_delay: maybe(fc.constantFrom("1s", "500ms", "1h30m", "soon", "0")),
    timeout: maybe(fc.constantFrom("10m", 5, "5 minutes", "-1s")),
    shell_quote: maybe(fc.boolean()),
    outz: fc.anything({ maxDepth: 2, maxKeys: 3 }),
  },
  { requiredKeys: [] },
)
const pipeline = fc.record(
  {
    name: maybe(fc.string()),
    description: maybe(fc.string()),
    params: maybe(params),
    params_file: maybe(fc.constantFrom("params.yaml", "missing.yaml", "../params.yaml")),
    stages: maybe(fc.dictionary(name, maybe(stage), { maxKeys: 4 })),
    stagse: fc.anything({ maxDepth: 2, maxKeys: 3 }),
  },
  { requiredKeys: ["stages"] },
)
/**
 * A well-formed pipeline (stage i writes out/s<i>.txt and may read an earlier stage's out), then, half the
 * time, one field of one stage replaced by anything: near-misses, where the loader's checks have to be exact.
 */
const nearlyValid = fc
  .array(
    fc.record({
      reads: fc.option(fc.nat(), { nil: undefined }),
      param: fc.boolean(),
      folder: fc.boolean(),
      quote: fc.boolean(),
    }),
    { minLength: 1, maxLength: 5 },
  )
  .chain((specs) => {
    const stages: Record<string, Record<string, unknown>> = {}
    specs.forEach((spec, i) => {
      const out = spec.folder ? `out/s${i}` : `out/s${i}.txt`
      const from = spec.reads === undefined || i === 0 ? undefined : `\${stages.s${spec.reads % i}.outs[0]}`
      stages[`s${i}`] = {
        cmd: `${spec.folder ? `mkdir -p ${out} && ` : ""}echo ${spec.param ? "${params.lr}" : "x"} ${from ?? "data/a.txt"}`,
        outs: [out],
        ...(spec.param ? { params: ["lr"] } : {}),
        ...(spec.quote ? { shell_quote: false } : {}),
      }
    })
    const valid = { params: { lr: 0.1, train: { epochs: 3 } }, stages }
    return fc.oneof(
      fc.constant(valid),
      fc
        .tuple(
          fc.constantFrom(...Object.keys(stages)),
          fc.constantFrom(
            "cmd",
            "outs",
            "deps",
            "params",
            "needs",
            "env",
            "resources",
            "with",
            "uses",
            "timeout",
          ),
          fc.anything({ maxDepth: 2, maxKeys: 3 }),
        )
        .map(([s, key, value]) => ({ ...valid, stages: { ...stages, [s]: { ...stages[s], [key]: value } } })),
    )
  })
const sets = fc.array(
  fc.oneof(
    fc.string(),
    fc
      .tuple(
        paramName,
        fc.constantFrom("1", "0.5", "x", "'x y'", "[1]", "{a: 1}", '"unclosed', "", "../..", "!!binary aGk="),
      )
      .map(([n, v]) => `${n}=${v}`),
  ),
  { maxLength: 2 },
)
/** YAML-ish token soup: the syntax a broken file is made of. */
const token = fc.constantFrom(
  "stages:",
  "\n",
  "\n  ",
  "\n    ",
  "\t",
  "a:",
  "cmd:",
  " echo hi",
  "outs:",
  " [",
  "]",
  " {",
  "}",
  ",",
  "- ",
  ":",
  "&x ",
  "*x",
  "*y",
  "<<: *x",
  "---",
  "...",
  "#",
  "'",
  '"',
  "!!binary ",
  "!!set ",
  "? ",
  "|",
  ">",
  "${params.lr}",
  "${stages.a.outs[0]}",
  "params:",
  " lr: 1",
  "needs: [a]",
  "deps:",
  " a.txt",
  "\u00e9",
  "\ufeff",
  "\u0000",
)
const soup = fc.array(token, { maxLength: 40 }).map((ts) => ts.join(""))
/** Bytes that are often not UTF-8. */
const bytes = fc.uint8Array({ maxLength: 64 })

// --- properties

describe("loadPipeline on arbitrary input", () => {
  const before = readdirSync(project, { recursive: true }).sort()

  it("arbitrary strings: a pipeline or a tagged error", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "binary", maxLength: 200 }), sets, async (t, s) => {
        await outcome(t, s)
      }),
      { seed: 1, numRuns: 200 },
    )
  })

  it("arbitrary bytes: a pipeline or a tagged error", async () => {
    await fc.assert(
      fc.asyncProperty(bytes, async (b) => {
        await outcome(b, [])
      }),
      { seed: 2, numRuns: 150 },
    )
  })

  it("YAML-ish token soup: a pipeline or a tagged error", async () => {
    await fc.assert(
      fc.asyncProperty(soup, sets, async (t, s) => {
        await outcome(t, s)
      }),
      { seed: 3, numRuns: 250 },
    )
  })

  it("random pipeline objects: a pipeline or a tagged error", async () => {
    await fc.assert(
      fc.asyncProperty(pipeline, sets, async (p, s) => {
        await outcome(stringify(p), s)
      }),
      { seed: 4, numRuns: 150 },
    )
  })

  it("near-valid pipeline objects: a pipeline or a tagged error, and some of each", async () => {
    const seen = new Map<string, number>()
    await fc.assert(
      fc.asyncProperty(nearlyValid, sets, async (p, s) => {
        const result = await outcome(stringify(p), s)
        seen.set(result, (seen.get(result) ?? 0) + 1)
      }),
      { seed: 5, numRuns: 200 },
    )
    // The generator reaches both sides and several kinds of error, or it tests little.
    expect(seen.get("valid") ?? 0).toBeGreaterThan(20)
    expect([...seen.keys()].filter((k) => k !== "valid").length).toBeGreaterThanOrEqual(2)
  })

  it("wrote nothing", () => {
    writeFileSync(file, "")
    expect(readdirSync(project, { recursive: true }).sort()).toEqual(before)
  })
})
