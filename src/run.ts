/**
 * One `pipeline run`: take the project lock, run the executor, then write the lock file and the run record
 * whatever happened (success, failure or interruption).
 */

import { rm } from "node:fs/promises"
import { basename, dirname, isAbsolute, join } from "node:path"
import { Effect, Exit } from "effect"
import { Artifacts } from "./artifacts.js"
import { type ProjectLocked, type StoreIOError, UsageError } from "./errors.js"
import { EventSink } from "./events.js"
import { execute, type StageResult } from "./executor.js"
import { listDir, removeLeftovers } from "./fs-util.js"
import { type LockFile, type LockStage, lockedStage, noPrototype, readLock, writeLock } from "./lockfile.js"
import type { Pipeline } from "./model.js"
import type { ParseCache } from "./parse-cache.js"
import { lockFileFor } from "./pipeline-path.js"
import { projectLock } from "./project-lock.js"
import { newRunId, processLog, type RunRecord, stageRecord, writeRunRecord } from "./run-record.js"
import type { StageRunner } from "./runner.js"
import { scratchRoot } from "./scratch.js"
import { makeSlots } from "./slots.js"
import { type SnapshotKey, writeSnapshot } from "./snapshot.js"
import { isSuccess, type RunStatus } from "./status.js"

/** Options of one run, as the CLI parsed them. */
export interface RunOptions {
  readonly selected: ReadonlySet<string>
  readonly jobs: number
  readonly gpus: number
  readonly force: boolean
  readonly forceStages: ReadonlySet<string>
  readonly keepGoing: boolean
  /** the project's state folder (`.pipeline`): holds the run lock */
  readonly stateDir: string
  readonly parseCache?: ParseCache
  readonly stageRunner: string
  readonly argv: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string | undefined>>
  readonly versions: Readonly<Record<string, string>>
  /** when set, a run that leaves every stage of the pipeline fresh records a no-op snapshot for this key */
  readonly snapshot?: SnapshotKey
  /** told the outcome even when the run is interrupted (the effect then ends interrupted) */
  readonly onFinish?: (outcome: RunOutcome) => void
}

/** How a run ended. */
export interface RunOutcome {
  readonly runId: string
  readonly status: RunStatus
  readonly results: ReadonlyMap<string, StageResult>
}

const runStatusOf = (results: ReadonlyMap<string, StageResult>, interrupted: boolean): RunStatus =>
  interrupted ? "cancelled" : [...results.values()].every((r) => isSuccess(r.status)) ? "succeeded" : "failed"

const nextLock = (pipeline: Pipeline, old: LockFile, results: ReadonlyMap<string, StageResult>): LockFile => {
  const stages = noPrototype<LockStage>()
  for (const name of pipeline.order) {
    const r = results.get(name)
    const stage = pipeline.stages.get(name)!
    const before = lockedStage(old, name)
    if (r && isSuccess(r.status) && r.fingerprint)
      stages[name] = { fingerprint: r.fingerprint, params: stage.params, deps: r.deps, outs: r.outs }
    else if (before) stages[name] = before
  }
  return { stages }
}

/**
 * Remove the temp files a killed run left in the workspace: beside the outs, what a restore was building
 * (`.<name>.tmp-*`, `.<name>.old-*`), which a stage reading the folder must not see; beside the lock file, a
 * lock file being written. Only needed after a run was killed: every other run cleans up its own.
 */
const clearLeftovers = async (pipeline: Pipeline, lockFile: string): Promise<void> => {
  for (const stage of pipeline.stages.values())
    for (const out of stage.outs) {
      const abs = join(pipeline.root, out)
      await removeLeftovers(dirname(abs), basename(abs)).catch(() => undefined)
    }
  const prefix = `${basename(lockFile)}.tmp-`
  for (const name of await listDir(dirname(lockFile)).catch(() => []))
    if (name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)))
      await rm(join(dirname(lockFile), name), { force: true }).catch(() => undefined)
}

/** Run a loaded pipeline. Fails only if it cannot start (lock held, bad options); stage failures are results. */
export const runPipeline = (
  pipeline: Pipeline,
  opts: RunOptions,
): Effect.Effect<
  RunOutcome,
  ProjectLocked | StoreIOError | UsageError,
  Artifacts | StageRunner | EventSink
> =>
  Effect.scoped(
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const events = yield* EventSink
        const artifacts = yield* Artifacts
        for (const name of opts.selected) {
          const stage = pipeline.stages.get(name)!
          if (stage.resources.gpu > opts.gpus)
            return yield* new UsageError({
              message: `stage "${name}" needs ${stage.resources.gpu} GPU(s) but this run has ${opts.gpus}`,
              hint: `Pass --gpus ${stage.resources.gpu} if the machine has them, or lower resources.gpu of "${name}".`,
            })
        }
        const runId = newRunId()
        const runsDir = join(pipeline.root, "runs")
        const taken = yield* projectLock(opts.stateDir, { command: opts.argv.join(" "), runId })
        const lockFile = lockFileFor(pipeline.file)
        if (taken.interrupted) {
          events.emit({ type: "interrupted-run", ...taken.interrupted })
          yield* Effect.promise(() => clearLeftovers(pipeline, lockFile))
        }
        const lock = yield* Effect.promise(() => readLock(lockFile, opts.parseCache))
        const startedAt = new Date()
        const order = pipeline.order.filter((n) => opts.selected.has(n))
        const record = (
          status: RunStatus,
          results: ReadonlyMap<string, StageResult>,
          ended: Date | undefined,
        ): RunRecord => ({
          id: runId,
          pid: process.pid,
          pipeline: pipeline.file,
          name: pipeline.name,
          status,
          started_at: startedAt.toISOString(),
          ended_at: ended ? ended.toISOString() : null,
          duration_ms: ended ? ended.getTime() - startedAt.getTime() : null,
          params: pipeline.params,
          argv: opts.argv,
          versions: opts.versions,
          stages: Object.fromEntries(
            order.map((n) => {
              const r = results.get(n)
              return [
                n,
                r
                  ? stageRecord(r)
                  : {
                      status: "pending",
                      reason: "",
                      fingerprint: null,
                      started_at: null,
                      duration_ms: 0,
                      attempts: 0,
                      outs: {},
                      log: null,
                    },
              ]
            }),
          ),
        })
        const results = new Map<string, StageResult>()
        yield* Effect.promise(() => writeRunRecord(runsDir, record("running", results, undefined)))
        events.emit({ type: "run-started", runId, pipeline: pipeline.name, stages: order })
        const slots = yield* makeSlots(opts.jobs, opts.gpus)
        const processes = processLog(runsDir, runId)
        // Only the stages are interruptible: the lock file and the run record are written whatever happens.
        const exit = yield* restore(
          execute(
            pipeline,
            {
              runId,
              selected: opts.selected,
              force: opts.force,
              forceStages: opts.forceStages,
              keepGoing: opts.keepGoing,
              lock,
              slots,
              stageRunner: opts.stageRunner,
              scratchDir: scratchRoot(opts.stateDir),
              parentEnv: opts.env,
              onProcess: processes.note,
            },
            results,
          ),
        ).pipe(Effect.exit)
        processes.close()
        const interrupted = Exit.isInterrupted(exit)
        const status = runStatusOf(results, interrupted)
        const ended = new Date()
        yield* Effect.promise(async () => {
          await writeLock(lockFile, nextLock(pipeline, lock, results), pipeline.order, opts.parseCache)
          await writeRunRecord(runsDir, record(status, results, ended))
        })
        yield* artifacts.flush.pipe(Effect.ignore)
        if (opts.snapshot && status === "succeeded" && order.length === pipeline.stages.size) {
          const abs = (p: string) => (isAbsolute(p) ? p : join(pipeline.root, p))
          const stages = [...pipeline.stages.values()]
          writeSnapshot(
            opts.snapshot,
            {
              name: pipeline.name,
              params: pipeline.params,
              stages: order.map((name) => ({ name, fingerprint: results.get(name)?.fingerprint ?? "" })),
            },
            [...pipeline.sources, lockFile, ...stages.flatMap((s) => s.deps.map(abs))],
            stages.flatMap((s) => s.outs.map(abs)),
            artifacts.observed,
          )
        }
        events.emit({
          type: "run-finished",
          runId,
          status,
          durationMs: ended.getTime() - startedAt.getTime(),
        })
        const outcome = { runId, status, results }
        opts.onFinish?.(outcome)
        return outcome
      }),
    ),
  )
