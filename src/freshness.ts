/**
 * Fresh, restorable or stale: the one decision `run` acts on and `status` reports. A stage is fresh when the
 * outs recorded for its current fingerprint (in the run cache, or in the lock file) are exactly what is in
 * the workspace; restorable when the run cache has outs for its fingerprint; stale otherwise.
 */
import { Effect } from "effect"
import { Artifacts, type CachedRun } from "./artifacts.js"
import type { StoreIOError } from "./errors.js"
import { fingerprint, fingerprintInput } from "./fingerprint.js"
import type { LockOut, LockStage } from "./lockfile.js"
import type { Stage } from "./model.js"
import { staleReasons } from "./reasons.js"
import type { Freshness } from "./status.js"

/** A dep and its content digest ("missing" if it does not exist). */
export interface DepDigest {
  readonly path: string
  readonly digest: string
}

/** What is known of a stage before anything is done to it. */
export interface Assessment {
  readonly state: Freshness
  readonly fingerprint: string
  readonly deps: ReadonlyArray<DepDigest>
  /** the run-cache entry for the fingerprint, if any */
  readonly cached: CachedRun | undefined
  /** the outs recorded for this fingerprint (run cache first, then the lock file) */
  readonly recorded: ReadonlyArray<LockOut> | undefined
  /** why it is not fresh (empty when fresh) */
  readonly reasons: ReadonlyArray<string>
}

/** The workspace state of a stage's outs (undefined where an out is missing). */
export const currentOuts = (
  stage: Stage,
): Effect.Effect<ReadonlyArray<LockOut | undefined>, StoreIOError, Artifacts> =>
  Effect.flatMap(Artifacts, (artifacts) =>
    Effect.map(artifacts.digestAll(stage.outs, "out"), (states) =>
      states.map((s, i): LockOut | undefined => (s ? { path: stage.outs[i]!, ...s } : undefined)),
    ),
  )

const sameOuts = (a: ReadonlyArray<LockOut | undefined>, b: ReadonlyArray<LockOut>): boolean =>
  a.length === b.length &&
  a.every((o, i) => o !== undefined && o.digest === b[i]?.digest && o.path === b[i]?.path)

const sameOutPaths = (outs: ReadonlyArray<LockOut>, paths: ReadonlyArray<string>): boolean =>
  outs.length === paths.length && outs.every((o, i) => o.path === paths[i])

/** Assess a stage given its deps' digests. */
export const assess = (
  stage: Stage,
  deps: ReadonlyArray<DepDigest>,
  locked: LockStage | undefined,
): Effect.Effect<Assessment, StoreIOError, Artifacts> =>
  Effect.gen(function* () {
    const artifacts = yield* Artifacts
    const fp = fingerprint(fingerprintInput(stage, new Map(deps.map((d) => [d.path, d.digest]))))
    // An entry is only used for the outs this stage declares: one naming other paths (hand-made, or from a
    // hostile store) would make a restore write where the pipeline never said it may.
    const entry = yield* artifacts.lookup(fp)
    const cached = entry && sameOutPaths(entry.outs, stage.outs) ? entry : undefined
    const recorded = cached?.outs ?? (locked?.fingerprint === fp ? locked.outs : undefined)
    const base = { fingerprint: fp, deps, cached, recorded }
    if (recorded && sameOuts(yield* currentOuts(stage), recorded))
      return { ...base, state: "fresh", reasons: [] }
    const reasons =
      locked?.fingerprint === fp
        ? [
            cached
              ? "outputs are missing or were modified"
              : "outputs are missing or were modified, and the store has no copy",
          ]
        : staleReasons(stage, locked, deps)
    return { ...base, state: cached ? "restorable" : "stale", reasons }
  })
