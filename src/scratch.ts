/**
 * Scratch folders: every stage that runs gets `.pipeline/scratch/<fingerprint>/`, a working folder for what
 * is not an out but is worth keeping across attempts, such as a training stage's checkpoints. It is keyed by
 * the fingerprint, so only a run of the same stage on the same inputs finds it again. It is made before the
 * stage starts, left in place when the stage fails or is interrupted (the next run resumes from it), and
 * removed once the stage succeeds, when its outs are in the store.
 *
 * Who used each folder last (pipeline and stage) is appended to one journal, `owners.jsonl`, the last line
 * for a fingerprint winning, so `pipeline gc` can tell which folders no run would pick up again
 * (`unusedScratch`) and compact the journal. One appended line per stage rather than a note file beside each
 * folder: opening a folder is on the way of every stage, and creating a file costs far more than appending a
 * line. (Folders made before the journal have a `<fingerprint>.json` note, still read.)
 *
 * Opening is synchronous on purpose: a `mkdir` and an append take tens of microseconds, a thread-pool round
 * trip for each costs more than that, and this sits between one stage's end and the next one's start.
 */
import { appendFileSync, mkdirSync, rmSync, utimesSync } from "node:fs"
import { readdir, readFile, rename, stat, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { errorCode } from "./fs-util.js"
import { isDigest } from "./hash.js"
import type { RunRecord } from "./run-record.js"
import { isSuccess, type StageStatus } from "./status.js"

/** The folder that holds the scratch folders, in the project's state folder (`.pipeline`). */
export const scratchRoot = (stateDir: string): string => join(stateDir, "scratch")

/** The journal of who used each scratch folder. */
const journalOf = (root: string): string => join(root, "owners.jsonl")

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
export const openScratch = (root: string, fp: string, owner: ScratchOwner): string => {
  const dir = join(root, fp)
  try {
    mkdirSync(dir)
  } catch (e) {
    const code = errorCode(e)
    if (code === "ENOENT") mkdirSync(dir, { recursive: true })
    else if (code === "EEXIST") {
      // its modification time says when it was last used (`gc --older-than`); a new folder's is now already
      const now = new Date()
      utimesSync(dir, now, now)
    } else throw e
  }
  appendFileSync(journalOf(root), `${JSON.stringify({ fp, ...owner })}\n`)
  return dir
}

/** Remove the scratch folder of `fp` (and the note of one made before the journal). */
export const removeScratch = (root: string, fp: string): void => {
  rmSync(join(root, fp), { recursive: true, force: true })
  rmSync(join(root, `${fp}.json`), { force: true })
}

/** The owners the journal names, the last line for a fingerprint winning; unreadable lines are skipped. */
const readJournal = async (root: string): Promise<Map<string, ScratchOwner>> => {
  const owners = new Map<string, ScratchOwner>()
  const text = await readFile(journalOf(root), "utf8").catch(() => "")
  for (const line of text.split("\n")) {
    if (line === "") continue
    try {
      const v = JSON.parse(line) as Record<string, unknown>
      if (isDigest(v.fp) && typeof v.pipeline === "string" && typeof v.stage === "string")
        owners.set(v.fp, { pipeline: v.pipeline, stage: v.stage })
    } catch {}
  }
  return owners
}

/**
 * Rewrite the journal with one line for each folder still there (after `gc` removed some). Written whole to
 * a temp file and renamed, so a crash leaves the old journal or the new one.
 */
export const compactScratchJournal = async (root: string): Promise<void> => {
  const owners = await readJournal(root)
  if (owners.size === 0) return
  const present = new Set(await readdir(root).catch(() => [] as string[]))
  const lines = [...owners].filter(([fp]) => present.has(fp)).map(([fp, o]) => JSON.stringify({ fp, ...o }))
  const tmp = `${journalOf(root)}.tmp`
  await writeFile(tmp, lines.map((l) => `${l}\n`).join(""))
  await rename(tmp, journalOf(root))
}

/** The owner of a folder made before the journal, from its note. */
const noteOwner = async (root: string, fp: string): Promise<ScratchOwner | undefined> => {
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
  const journal = await readJournal(root)
  const unused: string[] = []
  for (const fp of names.filter(isDigest).sort()) {
    const info = await stat(join(root, fp)).catch(() => undefined)
    if (info === undefined || !info.isDirectory()) continue
    if (unusedSinceMs !== undefined && info.mtimeMs < unusedSinceMs) {
      unused.push(fp)
      continue
    }
    const owner = journal.get(fp) ?? (await noteOwner(root, fp))
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
