/**
 * `pipeline status` and `run --dry-run`: what a run would do, stage by stage, without doing it. Stages are
 * assessed in order; a stage downstream of a restorable one is assessed with the outs the run cache would
 * restore, and one downstream of a stale stage is stale itself (unless early cutoff spares it at run time).
 */
import { Effect } from "effect"
import { Artifacts, type ContentState } from "./artifacts.js"
import type { StoreIOError } from "./errors.js"
import { assess, type DepDigest } from "./freshness.js"
import { type LockFile, lockedStage } from "./lockfile.js"
import type { Pipeline } from "./model.js"
import type { Freshness } from "./status.js"

const overlaps = (a: string, b: string): boolean => a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`)

/** One stage's predicted state. */
export interface StagePlan {
  readonly state: Freshness
  readonly reasons: ReadonlyArray<string>
  readonly fingerprint: string | undefined
}

/** Assess the selected stages of a pipeline against the lock file and the store. */
export const planPipeline = (
  pipeline: Pipeline,
  lock: LockFile,
  selected: ReadonlySet<string>,
): Effect.Effect<ReadonlyMap<string, StagePlan>, StoreIOError, Artifacts> =>
  Effect.gen(function* () {
    const artifacts = yield* Artifacts
    const plans = new Map<string, StagePlan>()
    /** outs whose content a run would change: restorable stages' (known) and stale stages' (unknown) */
    const predicted = new Map<string, ContentState | "unknown">()
    const producer = new Map<string, string>()
    for (const [name, stage] of pipeline.stages) for (const out of stage.outs) producer.set(out, name)
    for (const name of pipeline.order) {
      if (!selected.has(name)) continue
      const stage = pipeline.stages.get(name)!
      // Only data edges count: an upstream stage reached through `needs` alone does not change our inputs.
      const staleUp = stage.upstream.find(
        (u) =>
          plans.get(u)?.state === "stale" &&
          pipeline.stages.get(u)!.outs.some((out) => stage.deps.some((dep) => overlaps(dep, out))),
      )
      if (staleUp) {
        plans.set(name, {
          state: "stale",
          reasons: [
            `upstream stage "${staleUp}" is stale (early cutoff may still spare this stage if its outputs come out the same)`,
          ],
          fingerprint: undefined,
        })
        for (const out of stage.outs) predicted.set(out, "unknown")
        continue
      }
      const deps: DepDigest[] = []
      for (const path of stage.deps) {
        const p = predicted.get(path)
        const state = p && p !== "unknown" ? p : yield* artifacts.digest(path, "dep")
        deps.push({ path, digest: state ? state.digest : "missing" })
      }
      const missing = deps.find((d) => d.digest === "missing" && !producer.has(d.path))
      if (missing) {
        plans.set(name, {
          state: "stale",
          reasons: [`dep ${missing.path} does not exist`],
          fingerprint: undefined,
        })
        continue
      }
      const a = yield* assess(stage, deps, lockedStage(lock, name))
      plans.set(name, { state: a.state, reasons: a.reasons, fingerprint: a.fingerprint })
      if (a.state === "restorable" && a.cached) for (const o of a.cached.outs) predicted.set(o.path, o)
    }
    return plans
  })
