/**
 * Run records: `runs/<run-id>/run.json` (what ran, with which params, how each stage ended) and one log per
 * stage that ran a process. `run.json` is written when the run starts (status `running`) and when it ends;
 * a record still `running` with no end time belongs to a run that was killed. Process groups are appended to
 * `processes.jsonl` as they start so a later run can end any left behind.
 */
import { closeSync, openSync, writeSync } from "node:fs"
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises"
import { join } from "node:path"
import type { StageResult } from "./executor.js"
import type { RunStatus, StageStatus } from "./status.js"

/** One stage in a run record. */
export interface StageRecord {
  readonly status: StageStatus
  readonly reason: string
  readonly fingerprint: string | null
  readonly started_at: string | null
  readonly duration_ms: number
  readonly attempts: number
  readonly outs: Readonly<Record<string, string>>
  readonly log: string | null
}

/** `run.json`. */
export interface RunRecord {
  readonly id: string
  /** the orchestrator's pid: a record still `running` whose process is gone belongs to a killed run */
  readonly pid?: number
  readonly pipeline: string
  readonly name: string
  readonly status: RunStatus
  readonly started_at: string
  readonly ended_at: string | null
  readonly duration_ms: number | null
  readonly params: Readonly<Record<string, unknown>>
  readonly argv: ReadonlyArray<string>
  readonly versions: Readonly<Record<string, string>>
  readonly stages: Readonly<Record<string, StageRecord>>
  /** set when nothing was loaded or checked beyond the no-op snapshot (see `snapshot.ts`) */
  readonly shortcut?: "snapshot"
}

/** A new, sortable run id: UTC time to the millisecond plus 4 random hex digits. */
export const newRunId = (now: Date = new Date()): string =>
  `${now.toISOString().replace(/[-:]/g, "").replace("T", "-").replace(".", "-").replace("Z", "")}-${Math.floor(
    Math.random() * 0x10000,
  )
    .toString(16)
    .padStart(4, "0")}`

/** The record of one stage's result. */
export const stageRecord = (r: StageResult): StageRecord => ({
  status: r.status,
  reason: r.reason,
  fingerprint: r.fingerprint ?? null,
  started_at: r.startedAt ?? null,
  duration_ms: r.durationMs,
  attempts: r.attempts,
  outs: Object.fromEntries(r.outs.map((o) => [o.path, o.digest])),
  log: r.log ?? null,
})

/** Write `runs/<id>/run.json` atomically. */
export const writeRunRecord = async (runsDir: string, record: RunRecord): Promise<void> => {
  const dir = join(runsDir, record.id)
  await mkdir(dir, { recursive: true })
  const tmp = join(dir, `.run.json.tmp-${process.pid}`)
  await writeFile(tmp, `${JSON.stringify(record, null, 2)}\n`)
  await rename(tmp, join(dir, "run.json"))
}

/** `runs/<id>/processes.jsonl`, open for the length of a run. */
export interface ProcessLog {
  /** Note a stage's process group (synchronously: it must be written before the process can outlive us). */
  readonly note: (stage: string, pgid: number) => void
  readonly close: () => void
}

/** Open the process log of run `runId` (the file is created on the first note, and kept open). */
export const processLog = (runsDir: string, runId: string): ProcessLog => {
  let fd: number | undefined
  return {
    note: (stage, pgid) => {
      fd ??= openSync(join(runsDir, runId, "processes.jsonl"), "a")
      writeSync(fd, `${JSON.stringify({ stage, pgid })}\n`)
    },
    close: () => {
      if (fd !== undefined) closeSync(fd)
      fd = undefined
    },
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v)

/**
 * Read one run record; undefined if missing, unreadable, or not shaped like one (a torn or hand-edited file).
 * Its `id` is always the folder's name.
 */
export const readRunRecord = async (runsDir: string, id: string): Promise<RunRecord | undefined> => {
  let v: unknown
  try {
    v = JSON.parse(await readFile(join(runsDir, id, "run.json"), "utf8"))
  } catch {
    return undefined
  }
  if (!isObject(v) || typeof v.status !== "string" || typeof v.started_at !== "string" || !isObject(v.stages))
    return undefined
  if (!Object.values(v.stages).every((s) => isObject(s) && typeof s.status === "string")) return undefined
  return {
    ...(v as unknown as RunRecord),
    id,
    name: String(v.name),
    ended_at: typeof v.ended_at === "string" ? v.ended_at : null,
  }
}

/** Every run record, oldest first. */
export const listRunRecords = async (runsDir: string): Promise<ReadonlyArray<RunRecord>> => {
  let ids: string[]
  try {
    ids = (await readdir(runsDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name)
  } catch {
    return []
  }
  const records = await Promise.all(ids.sort().map((id) => readRunRecord(runsDir, id)))
  return records.filter((r): r is RunRecord => r !== undefined)
}
