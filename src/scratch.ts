/**
 * Scratch folders: every stage that runs gets `.pipeline/scratch/<fingerprint>/`, a working folder for what
 * is not an out but is worth keeping across attempts, such as a training stage's checkpoints. It is keyed by
 * the fingerprint, so only a run of the same stage on the same inputs finds it again. It is made before the
 * stage starts, left in place when the stage fails or is interrupted (the next run resumes from it), and
 * removed once the stage succeeds, when its outs are in the store.
 *
 * Beside each folder, `<fingerprint>.json` names the pipeline and stage that used it last, so `pipeline gc`
 * can tell which folders no run would pick up again (`unusedScratch`).
 */
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { isDigest } from "./hash.js"
import type { RunRecord } from "./run-record.js"
import { isSuccess, type StageStatus } from "./status.js"

/** The folder that holds the scratch folders, in the project's state folder (`.pipeline`). */
export const scratchRoot = (stateDir: string): string => join(stateDir, "scratch")

/** Which stage of which pipeline used a scratch folder last. */
export interface ScratchOwner {
  /** the pipeline file, absolute (as in run records) */
  readonly pipeline: string
  readonly stage: string
}

/**
 * Make the scratch folder of fingerprint `fp` under `root`, or keep the one an earlier attempt left, and
 * note who uses it now. Gives its absolute path.
 */
export const openScratch = async (root: string, fp: string, owner: ScratchOwner): Promise<string> => {
  const dir = join(root, fp)
  await mkdir(dir, { recursive: true })
  // its modification time says when it was last used (`gc --older-than`)
  const now = new Date()
  await utimes(dir, now, now)
  await writeFile(join(root, `${fp}.json`), `${JSON.stringify(owner)}\n`)
  return dir
}

/** Remove the scratch folder of `fp` and its note. */
export const removeScratch = async (root: string, fp: string): Promise<void> => {
  await rm(join(root, fp), { recursive: true, force: true })
  await rm(join(root, `${fp}.json`), { force: true })
}

const ownerOf = async (root: string, fp: string): Promise<ScratchOwner | undefined> => {
  try {
    const v = JSON.parse(await readFile(join(root, `${fp}.json`), "utf8")) as Record<string, unknown>
    return typeof v.pipeline === "string" && typeof v.stage === "string"
      ? { pipeline: v.pipeline, stage: v.stage }
      : undefined
  } catch {
    return undefined
  }
}

/** The fingerprint and status of `stage` in the latest record of `pipeline` that gave it one. */
const latest = (
  records: ReadonlyArray<RunRecord>,
  owner: ScratchOwner,
): { readonly fingerprint: string; readonly status: StageStatus } | undefined => {
  for (const record of [...records].reverse()) {
    if (record.pipeline !== owner.pipeline) continue
    const s = Object.hasOwn(record.stages, owner.stage) ? record.stages[owner.stage] : undefined
    if (s !== undefined && typeof s.fingerprint === "string")
      return { fingerprint: s.fingerprint, status: s.status }
  }
  return undefined
}

/**
 * The fingerprints of the scratch folders under `root` that no run would pick up again: the stage that used
 * one has run since with another fingerprint (its inputs changed) or has succeeded with this one, or its
 * pipeline file is gone; with `unusedSinceMs`, also every folder not used since then. A folder whose stage
 * last ran with its fingerprint and failed or was interrupted is kept: the next run resumes from it. So is
 * one whose owner is unknown. `records` are the run records, oldest first.
 */
export const unusedScratch = async (
  root: string,
  records: ReadonlyArray<RunRecord>,
  pipelineExists: (file: string) => boolean,
  unusedSinceMs?: number,
): Promise<ReadonlyArray<string>> => {
  const names = await readdir(root).catch(() => [] as string[])
  const unused: string[] = []
  for (const fp of names.filter(isDigest).sort()) {
    const info = await stat(join(root, fp)).catch(() => undefined)
    if (info === undefined || !info.isDirectory()) continue
    if (unusedSinceMs !== undefined && info.mtimeMs < unusedSinceMs) {
      unused.push(fp)
      continue
    }
    const owner = await ownerOf(root, fp)
    if (owner === undefined) continue
    if (!pipelineExists(owner.pipeline)) {
      unused.push(fp)
      continue
    }
    const last = latest(records, owner)
    if (last !== undefined && (last.fingerprint !== fp || isSuccess(last.status))) unused.push(fp)
  }
  return unused
}
