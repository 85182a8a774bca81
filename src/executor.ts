/**
 * The executor: runs the selected stages of a pipeline as a DAG. Every stage is a fiber that waits for its
 * upstream stages (holding no slot), decides from its fingerprint whether it is cached, restorable or must
 * run, and only then takes its resource slots for as long as its process runs.
 *
 * Failure policy: by default a failed stage stops the run from starting new stages (running ones finish);
 * with `keepGoing` only the failed stage's downstream is skipped. Interruption kills running process groups
 * (the runner's finalizer) and marks their stages cancelled; nothing of theirs enters the store. A stage's
 * scratch folder (`scratch.ts`) is made before each attempt, kept on failure and interruption, and removed
 * once the stage's outs are stored. Its processes are started in `stage-process.ts`.
 *
 * A stage that ran and wrote only small files (up to `SMALL_FILE`) hands its outs to its downstream stages as
 * soon as they are hashed: the downstream's fingerprint needs only their digests. Copying them into the
 * store, its run-cache entry and the removal of its scratch folder follow while the downstream stages start,
 * so on a chain of small stages that work overlaps the next stage's process instead of adding to the run.
 * The stage's own status is final only after that work: if storing fails, it fails (and a default run stops
 * starting stages), though a downstream stage may already have started from its outs, which are complete
 * and in place.
 */
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs"
import { dirname, join } from "node:path"
import { Deferred, Duration, Effect, Either, Exit, Fiber } from "effect"
import { Artifacts } from "./artifacts.js"
import type { StoreCorrupt, StoreIOError } from "./errors.js"
import { EventSink } from "./events.js"
import { assess } from "./freshness.js"
import { ioError } from "./fs-util.js"
import { type LockFile, type LockOut, lockedStage } from "./lockfile.js"
import type { Pipeline, Stage } from "./model.js"
import { StageRunner } from "./runner.js"
import { openScratch, removeScratch } from "./scratch.js"
import { effectiveResources, type Slots } from "./slots.js"
import { passthroughEnv } from "./stage-env.js"
import { runStageProcesses } from "./stage-process.js"
import { isSuccess, type StageStatus } from "./status.js"
import { SMALL_FILE } from "./store-write.js"

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
  /** the folder of the stages' scratch folders (`.pipeline/scratch`; see `scratch.ts`) */
  readonly scratchDir: string
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

/**
 * Resumes after the event loop's next I/O poll (`setImmediate`), where a plain yield would resume before it:
 * Effect runs ready fibers from microtasks, which run before the event loop reads anything.
 */
const afterPendingIO: Effect.Effect<void> = Effect.async<void>((resume) => {
  setImmediate(() => resume(Effect.void))
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
    const events = yield* EventSink
    const runner = yield* StageRunner
    const order = pipeline.order.filter((n) => opts.selected.has(n))
    /**
     * Each stage's outs are in place and hashed (`ran`), or it ended otherwise (its final status). Only for the
     * stages some selected stage waits for: a fan-out's leaves need none.
     */
    const ready = new Map<string, Deferred.Deferred<StageStatus>>()
    for (const name of order)
      for (const u of pipeline.stages.get(name)!.upstream)
        if (opts.selected.has(u) && !ready.has(u)) ready.set(u, yield* Deferred.make<StageStatus>())
    const announce = (name: string, status: StageStatus): Effect.Effect<void> => {
      const d = ready.get(name)
      return d === undefined ? Effect.void : Effect.asVoid(Deferred.succeed(d, status))
    }
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
    /** each assessed stage's fingerprint, for the record of one that is interrupted */
    const fingerprints = new Map<string, string>()
    /** stages using each scratch folder now: identical stages (no outs) share one, removed after the last */
    const scratchUsers = new Map<string, number>()

    const digestDeps = (stage: Stage) =>
      Effect.map(artifacts.digestAll(stage.deps, "dep"), (states) =>
        states.map((s, i) => ({ path: stage.deps[i]!, digest: s ? s.digest : "missing" })),
      )

    /**
     * Save outs that match nothing in the store (edited by hand) before they are replaced. Gives the outs that
     * are there: on a first run, usually none, and nothing needs removing.
     */
    const rescue = (stage: Stage) =>
      Effect.flatMap(artifacts.digestAll(stage.outs, "out"), (states) => {
        const present = stage.outs.flatMap((path, i) => {
          const s = states[i]
          return s ? [{ path, ...s }] : []
        })
        // Usually none: the outs were removed by the last run of the stage, or never written.
        if (present.length === 0) return Effect.succeed([])
        return Effect.as(
          Effect.forEach(
            present,
            (out) =>
              Effect.gen(function* () {
                if (yield* artifacts.isStored(out)) return
                yield* artifacts.save(out.path, out)
                yield* artifacts.noteSaved({ runId: opts.runId, stage: stage.name, out })
                events.emit({ type: "out-saved", stage: stage.name, path: out.path, digest: out.digest })
              }),
            { discard: true },
          ),
          present.map((out) => out.path),
        )
      })

    /** Remove the outs, run the command (with retries), check and store what it wrote. */
    const runStage = (
      stage: Stage,
      fp: string,
      deps: ReadonlyArray<{ path: string; digest: string }>,
      /** tells the stages waiting for this one that its outs are ready; undefined when none waits */
      outsReady: Effect.Effect<void> | undefined,
    ) => {
      let cleanup = (_exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => Effect.void
      return Effect.gen(function* () {
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
        // What a failed or interrupted command left at its outs is not an output of the stage: it is removed (the
        // log keeps what the command printed), so it is neither mistaken for one nor saved as a hand edit later.
        const discardOuts = Effect.forEach(stage.outs, (out) => artifacts.remove(out).pipe(Effect.ignore), {
          discard: true,
        })
        const prepare = (attempt: number) =>
          Effect.gen(function* () {
            // (a retry removes whatever the failed attempt left at every out)
            const present = attempt === 1 ? yield* rescue(stage) : stage.outs
            for (const out of present) yield* artifacts.remove(out)
            for (const out of stage.outs) makeDir(dirname(join(pipeline.root, out)))
            if (!stage.scratch) return undefined
            // made again for each attempt: the stage's scratch folder is its own, to empty if it likes
            return yield* Effect.try({
              try: () => openScratch(opts.scratchDir, fp, { pipeline: pipeline.file, stage: stage.name }),
              catch: (e) =>
                ioError("create the scratch folder", join(opts.scratchDir, fp), e) as StoreIOError,
            })
          })
        // Cleanup whatever the end: the scratch folder's user count, the outs of an interrupted command, the log.
        // (One `onExit` rather than a scope with a finalizer each: on a run of many small stages, the scope's
        // bookkeeping was a measurable share of the executor's time.)
        cleanup = (exit) =>
          Effect.suspend(() => {
            scratchUsers.set(fp, (scratchUsers.get(fp) ?? 1) - 1)
            const closeLog = log
              ? Effect.promise(() => new Promise<void>((r) => log!.end(() => r())))
              : Effect.void
            return Exit.isInterrupted(exit) && running.has(stage.name)
              ? Effect.zipRight(discardOuts, closeLog)
              : closeLog
          })
        // The scratch folder outlives a failure or an interruption (the next run resumes from it); a success
        // removes it below.
        scratchUsers.set(fp, (scratchUsers.get(fp) ?? 0) + 1)
        let attempt = 0
        for (;;) {
          attempt++
          const result = yield* opts.slots
            .withSlots(effectiveResources(stage.resources, opts.slots.gpus), (gpuIds) =>
              Effect.gen(function* () {
                // Checked once the slots are ours: a stage that waited for them must not start after a failure.
                if (stoppedBy !== undefined && !opts.keepGoing) return false
                const scratch = yield* prepare(attempt)
                running.add(stage.name)
                events.emit({ type: "stage-started", stage: stage.name, attempt })
                yield* runStageProcesses(
                  stage,
                  {
                    root: pipeline.root,
                    runId: opts.runId,
                    fingerprint: fp,
                    scratch,
                    gpus: gpuIds,
                    stageRunner: opts.stageRunner,
                    parentEnv: inherited,
                    writeLog,
                    ...(opts.onProcess === undefined ? {} : { onProcess: opts.onProcess }),
                  },
                  runner,
                  events,
                )
                return true
              }),
            )
            .pipe(Effect.either)
          // Its slots went to the next waiting stage: let that one start its process before this one hashes and
          // stores what it wrote, so the slot's next process does not wait for that work; and let the event loop
          // read what other processes reported meanwhile (an exit frees another slot) before that work too.
          yield* afterPendingIO
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
        const states = yield* artifacts.digestAll(stage.outs, "out")
        for (const [i, path] of stage.outs.entries()) {
          const state = states[i]
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
        // Small outs go to the downstream stages now, and this fiber stores them once those have had their
        // turn. Large ones are stored first: copying them is real work, and a store that fills up (the likely
        // failure with large outs) then fails this stage before anything downstream has used them.
        if (outsReady !== undefined && outs.every((o) => o.kind === "file" && o.size <= SMALL_FILE)) {
          yield* outsReady
          yield* Effect.yieldNow()
        }
        for (const out of outs) yield* artifacts.save(out.path, out)
        yield* artifacts.record({
          fingerprint: fp,
          stage: stage.name,
          createdAt: new Date().toISOString(),
          outs,
        })
        // Its outs are in the store: the scratch folder has served. One that cannot be removed is left to gc.
        if (stage.scratch && scratchUsers.get(fp) === 1)
          try {
            removeScratch(opts.scratchDir, fp)
          } catch {}
        return outcome("ran", "", {
          fingerprint: fp,
          deps,
          outs,
          attempts: attempt,
          log: log ? logRel : undefined,
        })
      }).pipe(Effect.onExit((exit) => cleanup(exit)))
    }

    /** Decide what a stage needs and do it. */
    const decideAndRun = (
      stage: Stage,
      outsReady: Effect.Effect<void> | undefined,
    ): Effect.Effect<
      Outcome,
      StageError | StoreIOError | StoreCorrupt,
      Artifacts | StageRunner | EventSink
    > =>
      Effect.gen(function* () {
        const deps = yield* digestDeps(stage)
        const missing = deps.find((d) => d.digest === "missing")
        if (missing)
          return outcome("failed", `dep ${missing.path} does not exist: create it, or fix the path in deps`, {
            deps,
          })
        const a = yield* assess(stage, deps, lockedStage(opts.lock, stage.name))
        const fp = a.fingerprint
        fingerprints.set(stage.name, fp)
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
        const result = yield* runStage(stage, fp, deps, outsReady)
        return result.status === "ran"
          ? { ...result, reason: forced ? "forced" : a.reasons.join("; ") }
          : result
      })

    const stageFiber = (name: string) =>
      Effect.gen(function* () {
        const stage = pipeline.stages.get(name)!
        const upstream = stage.upstream.filter((u) => opts.selected.has(u))
        const upstreamStatus: StageStatus[] = []
        for (const u of upstream) upstreamStatus.push(yield* Deferred.await(ready.get(u)!))
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
          result = yield* decideAndRun(stage, ready.has(name) ? announce(name, "ran") : undefined).pipe(
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
        // (already `ran` if its outs were handed on early: a failure to store them shows in its result)
        yield* announce(name, result.status)
      })

    // One fiber per stage, forked directly: `Effect.forEach` with unbounded concurrency does the same with a
    // dozen more runtime steps per fiber, a measurable share of the executor's work on many small stages.
    const fibers: Array<Fiber.RuntimeFiber<void>> = []
    for (const name of order) fibers.push(yield* Effect.fork(stageFiber(name)))
    // Interrupted: the stage fibers are interrupted (their processes killed) and waited for; then every stage
    // without a result was running (cancelled) or had not started (skipped). One handler for the run rather
    // than one per stage fiber, which on many small stages was a measurable cost.
    yield* Effect.forEach(fibers, Fiber.join, { discard: true }).pipe(
      Effect.onInterrupt(() =>
        Effect.zipRight(
          Fiber.interruptAll(fibers),
          Effect.sync(() => {
            for (const name of order) {
              if (results.has(name)) continue
              results.set(name, {
                ...(running.has(name)
                  ? outcome("cancelled", "interrupted while running", { fingerprint: fingerprints.get(name) })
                  : outcome("skipped", "the run was interrupted before it started")),
                startedAt: undefined,
                durationMs: 0,
              })
            }
          }),
        ),
      ),
    )
  })
