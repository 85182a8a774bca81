/**
 * The no-op fast path of `pipeline run`: when the pipeline's snapshot (`snapshot.ts`) says nothing changed
 * since a run that left every stage fresh, report every stage cached and write the run record, without
 * loading the pipeline, the store, Effect or the executor. Any option that could make a run do something
 * (`--force`, `--only`, `--dry-run`, ...) or anything unusual takes the full path instead, which reaches the
 * same answer more slowly.
 */
import { existsSync } from "node:fs"
import { join, resolve } from "node:path"
import { parseArgs } from "node:util"
import pkg from "../package.json" with { type: "json" }
import { detectGpus } from "./compute/detect.js"
import { findPipelineFile, findProjectRoot, storeDirFor } from "./pipeline-path.js"
import { textReporter } from "./reporters/text.js"
import { newRunId, type RunRecord, writeRunRecord } from "./run-record.js"
import { checkSnapshot, type SnapshotKey } from "./snapshot.js"

/** The options `run` may have for the fast path to apply; anything else (or a bad value) falls back. */
const OPTIONS = {
  set: { type: "string", multiple: true },
  jobs: { type: "string" },
  gpus: { type: "string" },
  json: { type: "boolean" },
  "keep-going": { type: "boolean" },
  root: { type: "string" },
  store: { type: "string" },
} as const

/** The snapshot key of a `run` command line, as `commands/run.ts` computes it for the full path too. */
export const snapshotKeyOf = (
  file: string,
  root: string,
  storeDir: string,
  sets: ReadonlyArray<string>,
  gpus: number,
): SnapshotKey => ({ file, root, storeDir, sets, gpus, version: pkg.version })

/**
 * Try the fast path for `pipeline run <args>`. Gives the exit code when it answered, or undefined when
 * the full path must run.
 */
export const tryFastRun = async (args: ReadonlyArray<string>): Promise<number | undefined> => {
  let parsed: ReturnType<
    typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; args: string[] }>
  >
  try {
    parsed = parseArgs({ args: [...args], options: OPTIONS, allowPositionals: true, strict: true })
  } catch {
    return undefined
  }
  const { values, positionals } = parsed
  if (positionals.length > 1) return undefined
  const gpus = values.gpus === undefined ? detectGpus(process.env).count : Number(values.gpus)
  if (!Number.isInteger(gpus) || gpus < 0) return undefined
  if (values.jobs !== undefined && !(Number.isInteger(Number(values.jobs)) && Number(values.jobs) >= 1))
    return undefined
  const cwd = process.cwd()
  const found = findPipelineFile(positionals[0], cwd)
  if (!("file" in found)) return undefined
  const rootArg = values.root ?? process.env.PIPELINE_ROOT
  const root = findProjectRoot(found.file, rootArg === undefined ? undefined : resolve(cwd, rootArg))
  // Another run holds the project, or one was killed holding it: the full path reports the holder, or takes
  // the stale lock over and ends what the killed run left running.
  if (existsSync(join(root, ".pipeline", "run.lock"))) return undefined
  const storeDir = storeDirFor(root, values.store ?? process.env.PIPELINE_STORE, cwd)
  const summary = checkSnapshot(snapshotKeyOf(found.file, root, storeDir, values.set ?? [], gpus))
  if (!summary) return undefined
  const { stages, name, params } = summary

  const runId = newRunId()
  const started = new Date()
  const report = textReporter(
    process.stderr,
    Boolean(process.stderr.isTTY) && process.env.NO_COLOR === undefined,
  )
  report({ type: "run-started", runId, pipeline: name, stages: stages.map((s) => s.name) })
  for (const s of stages)
    report({
      type: "stage-finished",
      stage: s.name,
      status: "cached",
      reason: "outputs are up to date",
      durationMs: 0,
    })
  const record: RunRecord = {
    id: runId,
    pipeline: found.file,
    name,
    status: "succeeded",
    started_at: started.toISOString(),
    ended_at: new Date().toISOString(),
    duration_ms: Date.now() - started.getTime(),
    params,
    argv: ["run", ...args],
    versions: { pipeline: pkg.version, node: process.versions.node },
    shortcut: "snapshot",
    stages: Object.fromEntries(
      stages.map((s) => [
        s.name,
        {
          status: "cached",
          reason: "outputs are up to date",
          fingerprint: s.fingerprint,
          started_at: started.toISOString(),
          duration_ms: 0,
          attempts: 0,
          outs: {},
          log: null,
        },
      ]),
    ),
  }
  await writeRunRecord(resolve(root, "runs"), record)
  report({ type: "run-finished", runId, status: "succeeded", durationMs: Date.now() - started.getTime() })
  if (values.json === true)
    process.stdout.write(
      `${JSON.stringify({
        run: runId,
        status: "succeeded",
        stages: Object.fromEntries(
          stages.map((s) => [
            s.name,
            {
              status: "cached",
              fingerprint: s.fingerprint,
              duration_ms: 0,
              reason: "outputs are up to date",
            },
          ]),
        ),
      })}\n`,
    )
  return 0
}
