// biome-ignore-all lint/suspicious/noTemplateCurlyInString: pipeline strings use ${...} references
/**
 * The spec loader on valid pipelines: what the resolved `Pipeline` holds. Invalid ones are covered by the
 * golden tests (errors-golden.test.ts).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { Cause, Effect, Exit } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { renderInvalid } from "../src/diagnostic.js"
import type { PipelineInvalid } from "../src/errors.js"
import type { Pipeline, Stage } from "../src/model.js"
import { displayPath } from "../src/source-map.js"
import { type LoadOptions, loadPipeline } from "../src/spec.js"

const scratch = mkdtempSync(join(tmpdir(), "pipeline-spec-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))
let projects = 0

/** A fresh project folder holding `files`; returns its path. */
const project = (files: Readonly<Record<string, string>>): string => {
  const dir = join(scratch, `p${projects++}`)
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
  return dir
}

const load = (dir: string, options: Partial<LoadOptions> = {}): Promise<Pipeline> =>
  Effect.runPromise(loadPipeline({ file: join(dir, "pipeline.yaml"), cwd: dir, root: dir, ...options }))

const loadError = async (dir: string, options: Partial<LoadOptions> = {}): Promise<PipelineInvalid> => {
  const exit = await Effect.runPromiseExit(
    loadPipeline({ file: join(dir, "pipeline.yaml"), cwd: dir, root: dir, ...options }),
  )
  if (Exit.isSuccess(exit)) throw new Error("expected the pipeline to be invalid")
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") throw new Error(Cause.pretty(exit.cause))
  return failure.value
}

const stage = (p: Pipeline, name: string): Stage => {
  const s = p.stages.get(name)
  if (s === undefined) throw new Error(`no stage ${name}`)
  return s
}

const commandOf = (p: Pipeline, name: string): ReadonlyArray<string> => {
  const action = stage(p, name).action
  if (action._tag !== "Command") throw new Error(`${name} is not a command stage`)
  return action.cmd
}

describe("loadPipeline", () => {
  it("resolves every field of a stage", async () => {
    const dir = project({
      "data/raw.csv": "a,b\n",
      "pipeline.yaml": `name: demo
description: a small pipeline
params:
  lr: 0.001
  train: {epochs: 3, layers: [64, 32]}
stages:
  prepare:
    description: cleans the data
    cmd: python prepare.py --in data/raw.csv
    deps: [data/raw.csv, ./prepare.py]
    outs: [data/clean.csv]
  train:
    cmd:
      - python train.py --lr \${params.lr} --data \${stages.prepare.outs[0]}
      - echo done
    deps: [data/clean.csv]
    outs: [models/model.bin, metrics.json]
    params: [train, lr]
    env: {SEED: 42, VERBOSE: true, LR: "\${params.lr}"}
    resources: {gpu: 1}
    retries: 2
    retry_delay: 500ms
    timeout: 1h30m
`,
      "prepare.py": "",
    })
    const p = await load(dir)
    expect(p.name).toBe("demo")
    expect(p.file).toBe(join(dir, "pipeline.yaml"))
    expect(p.root).toBe(dir)
    expect(p.params).toEqual({ lr: 0.001, train: { epochs: 3, layers: [64, 32] } })
    expect(p.order).toEqual(["prepare", "train"])
    expect(stage(p, "prepare")).toEqual({
      name: "prepare",
      action: { _tag: "Command", cmd: ["python prepare.py --in data/raw.csv"] },
      deps: ["data/raw.csv", "prepare.py"],
      outs: ["data/clean.csv"],
      params: {},
      needs: [],
      upstream: [],
      env: {},
      resources: { cpu: 1, gpu: 0 },
      retries: 0,
      retryDelayMs: 1000,
      timeoutMs: undefined,
      scratch: false,
      span: { file: "pipeline.yaml", line: 7, column: 3, endLine: 7, endColumn: 10 },
    })
    expect(stage(p, "train")).toEqual({
      name: "train",
      action: {
        _tag: "Command",
        cmd: ["python train.py --lr 0.001 --data data/clean.csv", "echo done"],
      },
      deps: ["data/clean.csv"],
      outs: ["models/model.bin", "metrics.json"],
      params: { lr: 0.001, train: { epochs: 3, layers: [64, 32] } },
      needs: [],
      upstream: ["prepare"],
      env: { SEED: "42", VERBOSE: "true", LR: "0.001" },
      resources: { cpu: 1, gpu: 1 },
      retries: 2,
      retryDelayMs: 500,
      timeoutMs: 5_400_000,
      scratch: false,
      span: { file: "pipeline.yaml", line: 12, column: 3, endLine: 12, endColumn: 8 },
    })
  })

  it("names the pipeline after its file unless it says otherwise", async () => {
    const dir = project({ "pipelines/train-small.yml": "stages:\n  a:\n    cmd: echo a\n" })
    const p = await Effect.runPromise(
      loadPipeline({ file: join(dir, "pipelines/train-small.yml"), cwd: dir, root: dir }),
    )
    expect(p.name).toBe("train-small")
    expect(stage(p, "a").span.file).toBe("pipelines/train-small.yml")
  })

  it("applies params with the precedence defaults < params_file < --set", async () => {
    const dir = project({
      "pipeline.yaml": `params_file: conf/params.yaml
params:
  lr: 0.1
  batch: 8
  train: {epochs: 3, optimizer: sgd}
stages:
  train:
    cmd: echo \${params.lr} \${params.batch} \${params.train.epochs} \${params.train.optimizer}
    params: [train.optimizer, lr, batch, train.epochs]
`,
      "conf/params.yaml": "lr: 0.01\ntrain:\n  epochs: 5\n",
    })
    const p = await load(dir, { sets: ["train.epochs=7", "batch=16", "batch=32"] })
    expect(p.params).toEqual({ lr: 0.01, batch: 32, train: { epochs: 7, optimizer: "sgd" } })
    expect(commandOf(p, "train")).toEqual(["echo 0.01 32 7 sgd"])
    // sorted by name, whatever the order of the list
    expect(Object.keys(stage(p, "train").params)).toEqual(["batch", "lr", "train.epochs", "train.optimizer"])
  })

  it("reads a JSON params file", async () => {
    const dir = project({
      "pipeline.yaml":
        "params_file: params.json\nparams: {lr: 0.1}\nstages:\n  a:\n    cmd: echo ${params.lr}\n",
      "params.json": '{"lr": 0.5}',
    })
    expect((await load(dir)).params).toEqual({ lr: 0.5 })
  })

  it("parses --set values as YAML scalars", async () => {
    const dir = project({
      "pipeline.yaml": `params: {lr: 0.1, fast: false, name: x, empty: y}
stages:
  a:
    cmd: echo
    params: [lr, fast, name, empty]
`,
    })
    const p = await load(dir, { sets: ["lr=1e-3", "fast=true", "name='x; rm -rf ~'", "empty="] })
    expect(stage(p, "a").params).toEqual({ empty: "", fast: true, lr: 0.001, name: "x; rm -rf ~" })
  })

  it("shell-quotes interpolated values so that a param cannot start a second command", async () => {
    const dir = project({
      "pipeline.yaml": `params: {name: safe}
stages:
  a:
    cmd: echo \${params.name} "\${params.name}" '\${params.name}' \${HOME} $\${params.name}
  b:
    cmd: echo \${params.name}
    shell_quote: false
`,
    })
    const p = await load(dir, { sets: ["name=x; rm -rf ~ 'q' \"d\" $HOME"] })
    expect(commandOf(p, "a")).toEqual([
      `echo 'x; rm -rf ~ '\\''q'\\'' "d" $HOME' "x; rm -rf ~ 'q' \\"d\\" \\$HOME" 'x; rm -rf ~ '\\''q'\\'' "d" $HOME' \${HOME} \${params.name}`,
    ])
    expect(commandOf(p, "b")).toEqual([`echo x; rm -rf ~ 'q' "d" $HOME`])
  })

  it("keeps the type of a value that is exactly one reference in `with`", async () => {
    const dir = project({
      "texts/a.txt": "hello\n",
      "pipeline.yaml": `params: {top: 3, dir: texts, lower: false}
stages:
  count:
    uses: word-count
    with:
      input: \${params.dir}/a.txt
      top: \${params.top}
      lowercase: \${params.lower}
`,
    })
    const p = await load(dir)
    expect(stage(p, "count").action).toEqual({
      _tag: "Builtin",
      uses: "word-count",
      version: "1",
      with: { input: "texts/a.txt", top: 3, lowercase: false },
    })
  })

  it("derives a built-in stage's outs and deps from its kind", async () => {
    const dir = project({
      "corpus/a.txt": "a\n",
      "pipeline.yaml": `name: demo
stages:
  count:
    uses: word-count
    with: {input: corpus}
    outs: [extra.txt]
  count2:
    uses: word-count
    with: {input: "\${stages.count.outs[1]}", out_dir: reports/words/}
  report:
    cmd: cat \${stages.count2.outs[0]}
`,
    })
    const p = await load(dir)
    const count = stage(p, "count")
    expect(count.outs).toEqual(["extra.txt", "outputs/demo/count/counts.json"])
    expect(count.deps).toEqual(["corpus"])
    expect(count.action).toEqual({
      _tag: "Builtin",
      uses: "word-count",
      version: "1",
      with: { input: "corpus", lowercase: true, top: 10 },
    })
    expect(stage(p, "count2").outs).toEqual(["reports/words/counts.json"])
    expect(stage(p, "count2").deps).toEqual(["outputs/demo/count/counts.json"])
    expect(stage(p, "count2").upstream).toEqual(["count"])
    expect(commandOf(p, "report")).toEqual(["cat reports/words/counts.json"])
    expect(p.order).toEqual(["count", "count2", "report"])
  })

  it("loads a user's kind module relative to the pipeline file, and a new one once it is edited", async () => {
    const kind = (version: string) => `export const definition = {
  kind: "shout",
  version: "${version}",
  description: "Upper-cases a text file.",
  schema: {
    type: "object",
    required: ["input"],
    properties: { input: { type: "string" }, exclaim: { type: "integer", default: 1 } },
  },
  outs: (args, outDir) => [\`\${outDir}/shout.txt\`],
  deps: (args) => [args.input],
}
export async function run() {}
`
    const dir = project({
      "kinds/shout.mjs": kind("1"),
      "texts/a.txt": "hello\n",
      "pipelines/loud.yaml": `stages:
  loud:
    uses: ../kinds/shout.mjs
    with: {input: texts/a.txt}
`,
    })
    const file = join(dir, "pipelines", "loud.yaml")
    const loud = stage(await load(dir, { file }), "loud")
    expect(loud.action).toEqual({
      _tag: "Builtin",
      uses: "shout",
      version: "1",
      with: { input: "texts/a.txt", exclaim: 1 },
      module: "kinds/shout.mjs",
    })
    // the module is a dep: its content is in the fingerprint, and a change of it is a reason to rerun
    expect(loud.deps).toEqual(["kinds/shout.mjs", "texts/a.txt"])
    expect(loud.outs).toEqual(["outputs/loud/loud/shout.txt"])
    writeFileSync(join(dir, "kinds", "shout.mjs"), kind("2"))
    expect(stage(await load(dir, { file }), "loud").action).toMatchObject({ uses: "shout", version: "2" })
  })

  it("normalises deps and outs to project-relative POSIX paths", async () => {
    const outside = mkdtempSync(join(scratch, "dataset-"))
    const dir = project({ "data/raw.csv": "", "b.txt": "" })
    writeFileSync(
      join(dir, "pipeline.yaml"),
      `stages:
  a:
    cmd: echo
    deps: [./data//raw.csv, ${join(dir, "b.txt")}, ${outside}, data/raw.csv/]
    outs: [./out/dir/, out2//x]
`,
    )
    const a = stage(await load(dir), "a")
    expect(a.deps).toEqual([outside, "b.txt", "data/raw.csv"].sort())
    expect(a.outs).toEqual(["out/dir", "out2/x"])
  })

  it("draws edges from deps inside or around outs, from references and from needs", async () => {
    const dir = project({
      "pipeline.yaml": `stages:
  report:
    cmd: cat data/clean/part.csv
    deps: [data/clean/part.csv]
  clean:
    cmd: make clean
    outs: [data/clean]
  summary:
    cmd: ls data > summary.txt
    deps: [data]
    outs: [summary.txt]
  notify:
    cmd: echo \${stages.summary.outs[0]}
    needs: [report]
  late:
    cmd: echo
  first:
    cmd: echo
`,
    })
    const p = await load(dir)
    expect(stage(p, "report").upstream).toEqual(["clean"])
    expect(stage(p, "summary").upstream).toEqual(["clean"])
    expect(stage(p, "notify").upstream).toEqual(["report", "summary"])
    expect(stage(p, "notify").needs).toEqual(["report"])
    // each step takes the earliest stage in file order whose upstream stages are placed
    expect(p.order).toEqual(["clean", "report", "summary", "notify", "late", "first"])
  })

  it("keeps the file order of stage names that look like numbers", async () => {
    const dir = project({
      "pipeline.yaml": "stages:\n  b:\n    cmd: x\n  '2':\n    cmd: x\n  '1':\n    cmd: x\n",
    })
    const p = await load(dir)
    expect([...p.stages.keys()]).toEqual(["b", "2", "1"])
    expect(p.order).toEqual(["b", "2", "1"])
  })

  it("follows YAML anchors and aliases", async () => {
    const dir = project({
      "pipeline.yaml": `stages:
  a:
    cmd: echo a
    env: &common {MODE: fast}
  b:
    cmd: echo b
    env: *common
`,
    })
    expect(stage(await load(dir), "b").env).toEqual({ MODE: "fast" })
  })

  it("takes durations as seconds or units", async () => {
    const dir = project({
      "pipeline.yaml": `stages:
  a: {cmd: x, timeout: 90, retry_delay: 0.25}
  b: {cmd: x, timeout: 2h, retry_delay: 1m30s}
  c: {cmd: x, timeout: 1.5s}
`,
    })
    const p = await load(dir)
    expect([stage(p, "a").timeoutMs, stage(p, "a").retryDelayMs]).toEqual([90_000, 250])
    expect([stage(p, "b").timeoutMs, stage(p, "b").retryDelayMs]).toEqual([7_200_000, 90_000])
    expect(stage(p, "c").timeoutMs).toBe(1500)
  })

  it("finds the project root when none is given", async () => {
    const dir = project({ ".pipeline/.keep": "", "pipelines/p.yaml": "stages:\n  a:\n    cmd: x\n" })
    const p = await Effect.runPromise(loadPipeline({ file: join(dir, "pipelines/p.yaml"), cwd: dir }))
    expect(p.root).toBe(dir)
  })

  it("names files in diagnostics relative to cwd, or absolute outside it", async () => {
    const dir = project({ "pipeline.yaml": "stages:\n  a:\n    cmdd: x\n" })
    const inside = await loadError(dir)
    const elsewhere = await loadError(dir, { cwd: join(dir, "sub") })
    if (inside._tag === "UsageError" || elsewhere._tag === "UsageError")
      throw new Error("unexpected usage error")
    expect(inside.diagnostics[0]?.file).toBe("pipeline.yaml")
    expect(elsewhere.diagnostics[0]?.file).toBe(join(dir, "pipeline.yaml"))
    expect(displayPath(join(dir, "a", "b.yaml"), dir)).toBe("a/b.yaml")
  })

  it("lets the renderer find the source without being told the loader's cwd", async () => {
    const dir = project({ "pipeline.yaml": "stages:\n  a:\n    cmdd: x\n" })
    expect(process.cwd()).not.toBe(dir)
    expect(renderInvalid(await loadError(dir))).toBe(
      [
        'pipeline.yaml:3:5: unknown key "cmdd" in stage "a"',
        "    3 |     cmdd: x",
        "      |     ~~~~",
        '   Did you mean "cmd"?',
      ].join("\n"),
    )
  })

  it("reports a missing pipeline file as a usage error", async () => {
    const dir = project({})
    const e = await loadError(dir)
    expect(e._tag).toBe("UsageError")
  })

  it("writes nothing, valid or not", async () => {
    const dir = project({
      "data/raw.csv": "",
      "pipeline.yaml": `stages:
  a: {cmd: x, deps: [data/raw.csv], outs: [out/a/b/c.txt]}
  b: {uses: word-count, with: {input: data/raw.csv}}
`,
    })
    const listing = () =>
      readdirSync(dir, { recursive: true })
        .map(String)
        .sort()
        .map((f) => `${f}:${statSync(join(dir, f)).mtimeMs}`)
    const before = listing()
    await load(dir)
    writeFileSync(join(dir, "pipeline.yaml"), "stages:\n  a: {cmd: x, outs: [../x]}\n")
    const after = listing()
    await loadError(dir)
    expect(listing()).toEqual(after)
    expect(before.length).toBe(after.length)
  })
})

describe("params a stage uses", () => {
  it("include every param interpolated into it, besides those it lists", async () => {
    const dir = project({
      "pipeline.yaml": `params:
  lr: 0.1
  model: { size: 3, depth: 2 }
  unused: 1
stages:
  train:
    cmd: train --lr \${params.lr} --size \${params.model.size}
    params: [model]
    env: { DEPTH: "\${params.model.depth}" }
    outs: [m.bin]
`,
    })
    const p = await load(dir)
    expect(stage(p, "train").params).toEqual({
      lr: 0.1,
      model: { size: 3, depth: 2 },
      "model.depth": 2,
      "model.size": 3,
    })
  })
})

describe("the parse cache", () => {
  it("serves the data of an unchanged file, and the same pipeline comes out", async () => {
    const { parseCacheAt } = await import("../src/parse-cache.js")
    const dir = project({
      "pipeline.yaml":
        "params:\n  n: 1\nstages:\n  '10':\n    cmd: echo ${params.n} > a\n    outs: [a]\n  '2':\n    cmd: cat a > b\n    deps: [a]\n    outs: [b]\n",
    })
    const cache = parseCacheAt(join(dir, ".cache"))
    const cold = await load(dir, { parseCache: cache })
    expect(readdirSync(join(dir, ".cache"))).toHaveLength(1)
    const warm = await load(dir, { parseCache: cache })
    expect([...warm.stages.keys()]).toEqual(["10", "2"])
    expect(warm.order).toEqual(cold.order)
    expect(JSON.stringify([...warm.stages.values()].map((s) => ({ ...s, span: undefined })))).toBe(
      JSON.stringify([...cold.stages.values()].map((s) => ({ ...s, span: undefined }))),
    )
    // A located error from a cached parse still points at the right place.
    writeFileSync(join(dir, "p2.yaml"), "stages:\n  a:\n    cmd: x\n    outs: [../out]\n")
    await Effect.runPromiseExit(
      loadPipeline({ file: join(dir, "p2.yaml"), cwd: dir, root: dir, parseCache: cache }),
    )
    const exit = await Effect.runPromiseExit(
      loadPipeline({ file: join(dir, "p2.yaml"), cwd: dir, root: dir, parseCache: cache }),
    )
    const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
    expect(failure?._tag === "Some" && renderInvalid(failure.value)).toContain("p2.yaml:4:12:")
  })
})
