/**
 * The project lock: one `pipeline run` (or `gc`) at a time per project. A second waits for nothing: it fails
 * at once with a message naming the holder (exit 1). A lock whose holder is no longer alive (a killed run) is
 * stale: it is taken over, and the process groups the killed run left running are ended first (see
 * `processes.ts`), before anything touches the workspace.
 *
 * `.pipeline/run.lock` holds the holder as JSON. It is created whole, by linking a finished temp file to its
 * name (atomic, and fails if the name exists), so no one ever reads a half-written lock and takes it for
 * stale. Taking over a stale lock is itself guarded by `run.lock.takeover`, created the same way: of two
 * runs that find the same dead holder, one removes the stale lock and the other then finds the new holder.
 * Nothing read from a lock file is trusted: a pid must be a positive integer, a run id must look like one,
 * and a lock that is not such JSON counts as stale. A lock taken on another machine (the project on a shared
 * file system) is never stale: its pid cannot be checked from here.
 */
import { link, open, readFile, rm } from "node:fs/promises"
import { hostname } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { ProjectLocked, StoreIOError } from "./errors.js"
import { errorCode, isNotFound, randomSuffix } from "./fs-util.js"
import {
  endLeftovers,
  isPid,
  isRunId,
  processAlive,
  processStartTime,
  type RecordedProcess,
} from "./processes.js"

interface Holder {
  readonly pid: number
  readonly startedAt: string
  readonly command: string
  /** the run holding the lock, so a later run can end what it left */
  readonly runId?: string
  /** the holder's start time (Linux), so a pid reused by another process is not taken for the holder */
  readonly procStart?: string
  /** the machine: a pid on another one (a project on a shared file system) cannot be checked, so it holds */
  readonly host?: string
  /** makes every lock's text unique, so a lock is removed only by whoever read that very lock */
  readonly nonce: string
}

/** What taking the lock found. */
export interface LockTaken {
  /** a run that was killed holding the lock (its record stays `running`), if its lock was taken over */
  readonly interrupted?: {
    readonly runId: string | undefined
    readonly pid: number
    /** the stage process groups it left running, ended now */
    readonly ended: ReadonlyArray<RecordedProcess>
  }
}

/** How long to keep trying while other processes are releasing or taking over a stale lock. */
const ATTEMPT_MS = 15_000

/** Create `file` holding `text`, atomically; false if it exists. */
const createWhole = async (file: string, text: string): Promise<boolean> => {
  const tmp = `${file}.new-${process.pid}-${randomSuffix()}`
  const fh = await open(tmp, "wx", 0o644)
  try {
    await fh.writeFile(text)
  } finally {
    await fh.close()
  }
  try {
    await link(tmp, file)
    return true
  } catch (e) {
    if (errorCode(e) === "EEXIST") return false
    throw e
  } finally {
    await rm(tmp, { force: true })
  }
}

/** The text of `file` (undefined if there is none) and the holder it names (undefined if it names none). */
const readHolder = async (
  file: string,
): Promise<{ text: string; holder: Holder | undefined } | undefined> => {
  let text: string
  try {
    text = await readFile(file, "utf8")
  } catch (e) {
    if (isNotFound(e)) return undefined
    throw e
  }
  try {
    const v = JSON.parse(text) as Partial<Record<keyof Holder, unknown>>
    if (!isPid(v.pid)) return { text, holder: undefined }
    return {
      text,
      holder: {
        pid: v.pid,
        startedAt: String(v.startedAt),
        command: String(v.command),
        nonce: String(v.nonce),
        ...(isRunId(v.runId) ? { runId: v.runId } : {}),
        ...(typeof v.procStart === "string" ? { procStart: v.procStart } : {}),
        ...(typeof v.host === "string" ? { host: v.host } : {}),
      },
    }
  } catch {
    return { text, holder: undefined }
  }
}

const holds = (h: Holder | undefined): boolean =>
  h !== undefined &&
  (h.host !== undefined && h.host !== hostname()
    ? true
    : h.pid !== process.pid && processAlive(h.pid, h.procStart))

/** Remove `file` if it still holds `text` (a new lock in its place is left alone). */
const removeIfUnchanged = async (file: string, text: string): Promise<void> => {
  const now = await readFile(file, "utf8").catch(() => undefined)
  if (now === text) await rm(file, { force: true })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Options of `projectLock`. */
export interface LockOptions {
  /** the command line, shown to a run that finds the lock held */
  readonly command: string
  /** the run that will hold the lock */
  readonly runId?: string
}

/** Hold the lock in `dir` (the project's `.pipeline`) for the scope's lifetime. */
export const projectLock = (dir: string, opts: LockOptions) => {
  const file = join(dir, "run.lock")
  const takeoverFile = `${file}.takeover`
  const startTime = processStartTime(process.pid)
  const me: Holder = {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    command: opts.command,
    ...(opts.runId === undefined ? {} : { runId: opts.runId }),
    ...(startTime === undefined ? {} : { procStart: startTime }),
    host: hostname(),
    nonce: randomSuffix(),
  }
  const myText = JSON.stringify(me)
  const acquire = Effect.tryPromise({
    try: async (): Promise<ProjectLocked | LockTaken> => {
      let interrupted: LockTaken["interrupted"]
      const deadline = Date.now() + ATTEMPT_MS
      while (Date.now() < deadline) {
        if (await createWhole(file, myText)) return interrupted ? { interrupted } : {}
        const found = await readHolder(file)
        if (found === undefined) continue // released meanwhile
        if (found.holder !== undefined && holds(found.holder))
          return new ProjectLocked({
            pid: found.holder.pid,
            startedAt: found.holder.startedAt,
            lockFile: file,
            ...(found.holder.host !== undefined && found.holder.host !== hostname()
              ? { host: found.holder.host }
              : {}),
          })
        // Stale: its holder died without releasing it. Take it over under the takeover lock.
        if (!(await createWhole(takeoverFile, myText))) {
          const other = await readHolder(takeoverFile)
          if (other !== undefined && !holds(other.holder)) await removeIfUnchanged(takeoverFile, other.text)
          else await sleep(20) // another run is taking it over right now: see who wins
          continue
        }
        try {
          const again = await readHolder(file)
          if (again?.text === found.text) {
            const dead = found.holder
            const ended = dead?.runId === undefined ? [] : await endLeftovers(dead.runId).catch(() => [])
            if (dead !== undefined) interrupted = { runId: dead.runId, pid: dead.pid, ended }
            await rm(file, { force: true })
          }
        } finally {
          await removeIfUnchanged(takeoverFile, myText)
        }
      }
      throw new Error(`other processes kept taking and releasing it for ${ATTEMPT_MS / 1000} s`)
    },
    catch: (e) =>
      new StoreIOError({
        op: "lock",
        path: file,
        message: `cannot take the project lock ${file}: ${e instanceof Error ? e.message : String(e)}`,
      }),
  }).pipe(Effect.flatMap((r) => (r instanceof ProjectLocked ? Effect.fail(r) : Effect.succeed(r))))
  return Effect.acquireRelease(acquire, () =>
    Effect.promise(() => removeIfUnchanged(file, myText).catch(() => undefined)),
  )
}
