/**
 * The executor: runs the selected stages of a pipeline as a DAG. Every stage is a fiber that waits for its
 * upstream stages (holding no slot), decides from its fingerprint whether it is cached, restorable or must
 * run, and only then takes its resource slots for as long as its process runs.
 *
 * Failure policy: by default a failed stage stops the run from starting new stages (running ones finish);
 * with `keepGoing` only the failed stage's downstream is skipped. Interruption kills running process groups
 * (the runner's finalizer) and marks their stages cancelled; nothing of theirs enters the store.
 */
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs"
import { dirname, join } from "node:path"
import { Deferred, Duration, Effect, Either, Exit } from "effect"
import { Artifacts } from "./artifacts.js"
import type { StoreCorrupt, StoreIOError } from "./errors.js"
import { EventSink } from "./events.js"
import { assess, currentOuts } from "./freshness.js"
import { type LockFile, type LockOut, lockedStage } from "./lockfile.js"
import type { Pipeline, Stage } from "./model.js"
import { type ProcessCommand, ProcessFailed, StageRunner } from "./runner.js"
import type { Slots } from "./slots.js"
import { passthroughEnv, stageEnv } from "./stage-env.js"
import { isSuccess, type StageStatus } from "./status.js"

/** How to run. */
export interface ExecuteOptions {
  readonly runId: string
  readonly selected: ReadonlySet<string>
  readonly force: boolean
  readonly forceStages: ReadonlySet<string>
  readonly keepGoing: boolean
  readonly lock: LockFile
  readonly slots: Slots
  /** the built stage-runner entry point, for built-in stages */
  readonly stageRunner: string
  /** the orchestrator's environment, filtered by the allow-list for each stage */
  readonly parentEnv: Readonly<Record<string, string | undefined>>
  /** called with each stage's process group id when it starts */
  readonly onProcess?: (stage: string, pgid: number) => void
}

/** The outcome of one stage. */
export interface StageResult {
  readonly status: StageStatus
  readonly reason: string
  readonly fingerprint: string | undefined
  readonly startedAt: string | undefined
  readonly durationMs: number
  readonly deps: ReadonlyArray<{ readonly path: string; readonly digest: string }>
  readonly outs: ReadonlyArray<LockOut>
  readonly attempts: number
  /** project-relative log path, when a process ran */
  readonly log: string | undefined
}

type Outcome = Omit<StageResult, "durationMs" | "startedAt">

const outcome = (status: StageStatus, reason: string, extra: Partial<Outcome> = {}): Outcome => ({
  status,
  reason,
  fingerprint: undefined,
  deps: [],
  outs: [],
  attempts: 0,
  log: undefined,
  ...extra,
})

/** A stage failed for a reason of its own (not an interruption). */
class StageError {
  readonly _tag = "StageError"
  constructor(readonly reason: string) {}
}

const storeError = (e: StoreIOError | StoreCorrupt): StageError =>
  new StageError(
    e._tag === "StoreCorrupt"
      ? `store object ${e.digest.slice(0, 12)} is corrupt (${e.path}); it was removed, run again to rebuild it`
      : `${e.message}`,
  )

const commandsOf = (stage: Stage, stageRunner: string): ReadonlyArray<ProcessCommand> =>
  stage.action._tag === "Command"
    ? stage.action.cmd.map((shell) => ({ shell }))
    : [{ file: process.execPath, args: [stageRunner] }]

/**
 * Run the selected stages. Never fails: every stage ends with a status. `results` is filled in as stages
 * finish, so a caller that is interrupted still sees what happened.
 */
export const execute = (
  pipeline: Pipeline,
  opts: ExecuteOptions,
  results: Map<string, StageResult>,
): Effect.Effect<void, never, Artifacts | StageRunner | EventSink> =>
  Effect.gen(function* () {
    const artifacts = yield* Artifacts
    const runner = yield* StageRunner
    const events = yield* EventSink
    const order = pipeline.order.filter((n) => opts.selected.has(n))
    const done = new Map<string, Deferred.Deferred<StageStatus>>()
    for (const name of order) done.set(name, yield* Deferred.make<StageStatus>())
    let stoppedBy: string | undefined
    /** folders known to exist, so each is created once per run */
    const made = new Set<string>()
    const makeDir = (dir: string) => {
      if (made.has(dir)) return
      mkdirSync(dir, { recursive: true })
      made.add(dir)
    }
    const inherited = passthroughEnv(opts.parentEnv)
    /** stages whose process started: interrupted, they are cancelled rather than skipped */
    const running = new Set<string>()

    const digestDeps = (stage: Stage) =>
      Effect.forEach(stage.deps, (path) =>
        artifacts.digest(path, "dep").pipe(Effect.map((s) => ({ path, digest: s ? s.digest : "missing" }))),
      )

    /** Save outs that match nothing in the store (edited by hand) before they are replaced. */
    const rescue = (stage: Stage) =>
      Effect.gen(function* () {
        for (const out of yield* currentOuts(stage)) {
          if (!out || (yield* artifacts.isStored(out))) continue
          yield* artifacts.save(out.path, out)
          yield* artifacts.noteSaved({ runId: opts.runId, stage: stage.name, out })
          events.emit({ type: "out-saved", stage: stage.name, path: out.path, digest: out.digest })
        }
      })

    const runProcesses = (stage: Stage, gpuIds: ReadonlyArray<number>, writeLog: (line: string) => void) => {
      const env = stageEnv(stage, { root: pipeline.root, runId: opts.runId, gpus: gpuIds }, inherited)
      const envWithSpec =
        stage.action._tag === "Builtin"
          ? {
              ...env,
              PIPELINE_STAGE_SPEC: JSON.stringify({
                kind: stage.action.uses,
                with: stage.action.with,
                deps: stage.deps,
                outs: stage.outs,
              }),
            }
          : env
      const steps = Effect.forEach(
        commandsOf(stage, opts.stageRunner),
        (command) =>
          runner.run({
            command,
            cwd: pipeline.root,
            env: envWithSpec,
            onOutput: (stream, line) => {
              writeLog(line)
              events.emit({ type: "stage-output", stage: stage.name, stream, line })
            },
            onEvent: (data) => events.emit({ type: "stage-progress", stage: stage.name, data }),
            onStart: (pgid) => opts.onProcess?.(stage.name, pgid),
          }),
        { discard: true },
      )
      return stage.timeoutMs === undefined
        ? steps
        : steps.pipe(
            Effect.timeoutFail({
              duration: Duration.millis(stage.timeoutMs),
              onTimeout: () =>
                new ProcessFailed({
                  exitCode: undefined,
                  signal: undefined,
                  message: `timed out after ${Duration.format(Duration.millis(stage.timeoutMs ?? 0))}`,
                }),
            }),
          )
    }

    /** Remove the outs, run the command (with retries), check and store what it wrote. */
    const runStage = (stage: Stage, fp: string, deps: ReadonlyArray<{ path: string; digest: string }>) => {
      const logRel = join("runs", opts.runId, `${stage.name}.log`)
      const logAbs = join(pipeline.root, logRel)
      // The log is opened on the first line of output: most small stages print nothing.
      let log: WriteStream | undefined
      const writeLog = (line: string) => {
        if (!log) {
          mkdirSync(dirname(logAbs), { recursive: true })
          log = createWriteStream(logAbs, { flags: "a" })
        }
        log.write(`${line}\n`)
      }
      const closeLog = Effect.suspend(() => {
        const open = log
        return open === undefined ? Effect.void : Effect.promise(() => new Promise<void>((r) => open.end(r)))
      })
      // What a failed or interrupted command left at its outs is not an output of the stage: it is removed (the
      // log keeps what the command printed), so it is neither mistaken for one nor saved as a hand edit later.
      const discardOuts = Effect.forEach(stage.outs, (out) => artifacts.remove(out).pipe(Effect.ignore), {
        discard: true,
      })
      const prepare = (attempt: number) =>
        Effect.gen(function* () {
          if (attempt === 1) yield* rescue(stage)
          for (const out of stage.outs) yield* artifacts.remove(out)
          for (const out of stage.outs) makeDir(dirname(join(pipeline.root, out)))
        })
      // Not a scope: `onExit` does the same for these two finalizers at a fraction of a scope's cost per stage.
      const cleanUp = <A, E>(exit: Exit.Exit<A, E>) =>
        Exit.isInterrupted(exit) && running.has(stage.name)
          ? Effect.zipRight(discardOuts, closeLog)
          : closeLog
      return Effect.gen(function* () {
        let attempt = 0
        for (;;) {
          attempt++
          const result = yield* opts.slots
            .withSlots(stage.resources, (gpuIds) =>
              Effect.gen(function* () {
                // Checked once the slots are ours: a stage that waited for them must not start after a failure.
                if (stoppedBy !== undefined && !opts.keepGoing) return false
                yield* prepare(attempt)
                running.add(stage.name)
                events.emit({ type: "stage-started", stage: stage.name, attempt })
                yield* runProcesses(stage, gpuIds, writeLog)
                return true
              }),
            )
            .pipe(Effect.either)
          if (Either.isRight(result)) {
            if (!result.right)
              return outcome("skipped", `the run stopped starting stages after "${stoppedBy}" failed`)
            break
          }
          if (result.left._tag !== "ProcessFailed") return yield* Effect.fail(result.left)
          if (attempt > stage.retries) {
            yield* discardOuts
            return outcome("failed", result.left.message, {
              fingerprint: fp,
              deps,
              attempts: attempt,
              log: log ? logRel : undefined,
            })
          }
          const delayMs = stage.retryDelayMs * 2 ** (attempt - 1)
          events.emit({
            type: "stage-retry",
            stage: stage.name,
            attempt,
            delayMs,
            reason: result.left.message,
          })
          yield* Effect.sleep(Duration.millis(delayMs))
        }
        const outs: LockOut[] = []
        for (const path of stage.outs) {
          const state = yield* artifacts.digest(path, "out")
          if (!state) {
            yield* discardOuts
            return outcome(
              "failed",
              `the command succeeded but did not write its declared out ${path}: write it, or remove it from outs`,
              { fingerprint: fp, deps, attempts: attempt, log: log ? logRel : undefined },
            )
          }
          outs.push({ path, ...state })
        }
        for (const out of outs) yield* artifacts.save(out.path, out)
        yield* artifacts.record({
          fingerprint: fp,
          stage: stage.name,
          createdAt: new Date().toISOString(),
          outs,
        })
        return outcome("ran", "", {
          fingerprint: fp,
          deps,
          outs,
          attempts: attempt,
          log: log ? logRel : undefined,
        })
      }).pipe(Effect.onExit(cleanUp))
    }

    /** Decide what a stage needs and do it. */
    const decideAndRun = (
      stage: Stage,
    ): Effect.Effect<Outcome, StageError | StoreIOError | StoreCorrupt, Artifacts> =>
      Effect.gen(function* () {
        const deps = yield* digestDeps(stage)
        const missing = deps.find((d) => d.digest === "missing")
        if (missing)
          return outcome("failed", `dep ${missing.path} does not exist: create it, or fix the path in deps`, {
            deps,
          })
        const a = yield* assess(stage, deps, lockedStage(opts.lock, stage.name))
        const fp = a.fingerprint
        const forced = opts.force || opts.forceStages.has(stage.name)
        if (!forced && a.state === "fresh" && a.recorded) {
          if (!a.cached) {
            // Fresh by the lock file, but the store lost it (gc, new clone): keep a copy for next time.
            for (const out of a.recorded) yield* artifacts.save(out.path, out)
            yield* artifacts.record({
              fingerprint: fp,
              stage: stage.name,
              createdAt: new Date().toISOString(),
              outs: a.recorded,
            })
          }
          return outcome("cached", "outputs are up to date", { fingerprint: fp, deps, outs: a.recorded })
        }
        if (!forced && a.state === "restorable" && a.cached) {
          const cached = a.cached
          const restored = yield* Effect.gen(function* () {
            yield* rescue(stage)
            for (const out of cached.outs) yield* artifacts.restore(out)
          }).pipe(Effect.either)
          if (Either.isRight(restored))
            return outcome("restored", `${a.reasons.join("; ")}; restored from the run cache`, {
              fingerprint: fp,
              deps,
              outs: cached.outs,
            })
          if (restored.left._tag === "StoreIOError") return yield* Effect.fail(restored.left)
          events.emit({
            type: "stage-output",
            stage: stage.name,
            stream: "stderr",
            line: `[pipeline] ${storeError(restored.left).reason}; running the stage instead`,
          })
        }
        const result = yield* runStage(stage, fp, deps)
        return result.status === "ran"
          ? { ...result, reason: forced ? "forced" : a.reasons.join("; ") }
          : result
      })

    const stageFiber = (name: string) =>
      Effect.gen(function* () {
        const stage = pipeline.stages.get(name)!
        const upstream = stage.upstream.filter((u) => opts.selected.has(u))
        const upstreamStatus = yield* Effect.forEach(upstream, (u) => Deferred.await(done.get(u)!))
        const startedAtMs = Date.now()
        const startedAt = new Date(startedAtMs).toISOString()
        const failedIndex = upstreamStatus.findIndex((s) => !isSuccess(s))
        let result: Outcome
        if (failedIndex >= 0) {
          result = outcome(
            "skipped",
            `upstream stage "${upstream[failedIndex]}" ${upstreamStatus[failedIndex]}`,
          )
        } else if (stoppedBy !== undefined && !opts.keepGoing) {
          result = outcome("skipped", `the run stopped starting stages after "${stoppedBy}" failed`)
        } else {
          result = yield* decideAndRun(stage).pipe(
            Effect.catchAll((e) =>
              Effect.succeed(outcome("failed", e._tag === "StageError" ? e.reason : storeError(e).reason)),
            ),
          )
        }
        if (result.status === "failed" && stoppedBy === undefined) stoppedBy = name
        results.set(name, { ...result, startedAt, durationMs: Date.now() - startedAtMs })
        events.emit({
          type: "stage-finished",
          stage: name,
          status: result.status,
          reason: result.reason,
          durationMs: Date.now() - startedAtMs,
        })
        yield* Deferred.succeed(done.get(name)!, result.status)
      }).pipe(
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            if (results.has(name)) return
            const wasRunning = running.has(name)
            results.set(name, {
              ...(wasRunning
                ? outcome("cancelled", "interrupted while running")
                : outcome("skipped", "the run was interrupted before it started")),
              startedAt: undefined,
              durationMs: 0,
            })
          }),
        ),
      )

    yield* Effect.forEach(order, stageFiber, { concurrency: "unbounded", discard: true })
  })
