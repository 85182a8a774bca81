/**
 * The stage runner: the entry point a built-in stage's subprocess starts with. It reads the stage's spec
 * from `PIPELINE_STAGE_SPEC`, loads the kind's implementation (lazily: heavy kinds pay for their imports
 * only when they run; a user's kind module by its absolute path) and reports progress on the events
 * channel (fd 3).
 */
import { createWriteStream } from "node:fs"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import type { StageImplementation } from "../stages/api.js"

const implementations: Readonly<Record<string, () => Promise<{ run: StageImplementation }>>> = {
  "word-count": () => import("../stages/word-count.js"),
  ingest: () => import("../stages/ingest.js"),
  tokenize: () => import("../stages/tokenize.js"),
  pretrain: () => import("../stages/pretrain.js"),
  freeze: () => import("../stages/freeze.js"),
  train: () => import("../stages/train.js"),
  evaluate: () => import("../stages/evaluate.js"),
  "forgetting-check": () => import("../stages/forgetting-check.js"),
}

/** A user's kind module: its `run` export (or a CommonJS module's `module.exports.run`). */
const kindModule = async (file: string): Promise<{ run: StageImplementation }> => {
  const m = (await import(pathToFileURL(file).href)) as { run?: unknown; default?: { run?: unknown } }
  const run = m.run ?? m.default?.run
  if (typeof run !== "function") throw new Error(`the kind module ${file} exports no run function`)
  return { run: run as StageImplementation }
}

const fail = (message: string): never => {
  process.stderr.write(`${message}\n`)
  process.exit(1)
}

const main = async () => {
  const raw = process.env.PIPELINE_STAGE_SPEC
  if (!raw)
    return fail("stage-runner: PIPELINE_STAGE_SPEC is not set; it is started by `pipeline run`, not by hand")
  const spec = JSON.parse(raw) as {
    kind: string
    /** a kind module's absolute path */
    module?: string
    fingerprint: string
    with: Record<string, unknown>
    deps: string[]
    outs: string[]
  }
  const { module } = spec
  const load = module === undefined ? implementations[spec.kind] : () => kindModule(module)
  if (!load) return fail(`stage-runner: unknown stage kind "${spec.kind}"`)
  const root = process.env.PIPELINE_ROOT ?? process.cwd()
  const fd = Number(process.env.PIPELINE_EVENTS_FD ?? 3)
  const events = createWriteStream("", { fd, autoClose: false })
  const { run } = await load()
  await run({
    root,
    args: spec.with,
    // a kind module is a dep of its stages (for the fingerprint), not an input the kind reads
    deps: spec.deps.map((d) => resolve(root, d)).filter((d) => d !== module),
    outs: spec.outs.map((o) => resolve(root, o)),
    scratch: process.env.PIPELINE_SCRATCH ?? "",
    fingerprint: spec.fingerprint,
    progress: (data) => events.write(`${JSON.stringify(data)}\n`),
  })
  await new Promise<void>((r) => events.end(() => r()))
}

main().catch((e: unknown) => {
  const err = e instanceof Error ? e : undefined
  fail(err?.name === "StageInputError" ? `error: ${err.message}` : `error: ${err?.stack ?? String(e)}`)
})
