/**
 * Why a stage is stale: its current inputs compared with what `pipeline.lock` recorded. Used by `status`
 * and by `run` (the reason a stage ran).
 */
import { canonicalJson } from "./canonical-json.js"
import type { LockStage } from "./lockfile.js"
import type { Stage } from "./model.js"

const show = (v: unknown): string =>
  v === undefined ? "(unset)" : typeof v === "string" ? v : JSON.stringify(v)

/** The differences between a stage's current inputs and its lock entry, most telling first. */
export const staleReasons = (
  stage: Stage,
  locked: LockStage | undefined,
  deps: ReadonlyArray<{ readonly path: string; readonly digest: string }>,
): ReadonlyArray<string> => {
  if (!locked) return ["never run (no entry in the lock file)"]
  const reasons: string[] = []
  const before = new Map(locked.deps.map((d) => [d.path, d.digest]))
  for (const d of deps) {
    const old = before.get(d.path)
    if (d.digest === "missing") reasons.push(`dep ${d.path} is missing`)
    else if (old === undefined) reasons.push(`dep ${d.path} is new`)
    else if (old !== d.digest) reasons.push(`dep ${d.path} changed`)
  }
  for (const path of before.keys()) {
    if (!deps.some((d) => d.path === path)) reasons.push(`dep ${path} was removed`)
  }
  const names = new Set([...Object.keys(locked.params), ...Object.keys(stage.params)])
  for (const name of [...names].sort()) {
    const old = Object.hasOwn(locked.params, name) ? locked.params[name] : undefined
    const now = Object.hasOwn(stage.params, name) ? stage.params[name] : undefined
    if (canonicalJson(old) !== canonicalJson(now)) reasons.push(`param ${name}: ${show(old)} -> ${show(now)}`)
  }
  if (reasons.length === 0) reasons.push("stage definition changed (command, outs, env or kind version)")
  return reasons
}
