/**
 * Other processes, as a run must see them after a crash: whether the pid in a lock file is still the process
 * that wrote it, and ending the stage process groups a killed run left behind.
 *
 * Node cannot make a child die with its parent: a `pipeline run` killed with SIGKILL leaves its stages'
 * process groups running (each stage is detached into its own group so that a cancel reaches every process
 * it started). The run records each group in `runs/<id>/processes.jsonl` as it starts; the next run that
 * takes over the dead run's project lock ends them before it touches the workspace (`endLeftovers`).
 *
 * A group id alone proves nothing: the group may be gone and its number reused by an unrelated process. A
 * group is only killed when one of its live members carries `PIPELINE_RUN_ID=<that run's id>` in its
 * environment (read from `/proc/<pid>/environ`), which only the run's own stage processes have. Where there
 * is no `/proc` (macOS), nothing is killed.
 */
import { readdirSync, readFileSync } from "node:fs"

/** What `/proc/<pid>/stat` says of a process: its state letter, process group and start time. */
interface ProcStat {
  readonly state: string
  readonly pgrp: number
  /** clock ticks after boot: with the pid, identifies one process for the machine's uptime */
  readonly startTime: string
}

const procStat = (pid: number): ProcStat | undefined => {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  // The command name (field 2) is in parentheses and may contain spaces and ")": split after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  const [state, , pgrp] = fields
  const startTime = fields[19]
  if (state === undefined || pgrp === undefined || startTime === undefined) return undefined
  return { state, pgrp: Number(pgrp), startTime }
}

/** A pid that may name another process: a positive integer other than init's. */
export const isPid = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n > 1

/** The start time of process `pid` (Linux), to tell it from a later process given the same pid. */
export const processStartTime = (pid: number): string | undefined => procStat(pid)?.startTime

/**
 * Whether process `pid` exists (a zombie does not count) and, when `startTime` is known on both sides, is the
 * process that had that start time.
 */
export const processAlive = (pid: number, startTime?: string): boolean => {
  if (!isPid(pid)) return false
  try {
    process.kill(pid, 0)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false
  }
  const st = procStat(pid)
  if (st === undefined) return true // no /proc: kill(pid, 0) is all we know
  return st.state !== "Z" && (startTime === undefined || st.startTime === startTime)
}

/** Every live (not zombie) process: its pid, process group and state, from /proc; undefined without /proc. */
const allProcesses = (): ReadonlyArray<ProcStat & { readonly pid: number }> | undefined => {
  let names: string[]
  try {
    names = readdirSync("/proc")
  } catch {
    return undefined
  }
  const found: Array<ProcStat & { readonly pid: number }> = []
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue
    const st = procStat(Number(name))
    if (st !== undefined && st.state !== "Z") found.push({ ...st, pid: Number(name) })
  }
  return found
}

/** The environment of process `pid` as NAME=value strings (empty if it cannot be read). */
const environ = (pid: number): ReadonlyArray<string> => {
  try {
    return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0")
  } catch {
    return []
  }
}

/** The shape of run ids (`newRunId`): anything else in a lock file is not used to build a path. */
export const isRunId = (s: unknown): s is string =>
  typeof s === "string" && /^\d{8}-\d{6}-\d{3}-[0-9a-f]{4}$/.test(s)

/** One line of `processes.jsonl`: a stage's process group. */
export interface RecordedProcess {
  readonly stage: string
  readonly pgid: number
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * End the process groups of the killed run `runId` that are still alive, and wait (up to `waitMs`) until they
 * are gone. A group is the run's when one of its live members carries `PIPELINE_RUN_ID=<runId>`: all of
 * them are found by that mark, including one started in the instant between its spawn and its line in
 * `processes.jsonl`. With `stage`, only the groups of that stage (`PIPELINE_STAGE=<stage>`). Gives the groups it
 * ended, with their stages.
 */
export const endLeftovers = async (
  runId: string,
  waitMs = 5000,
  stage?: string,
): Promise<ReadonlyArray<RecordedProcess>> => {
  if (!isRunId(runId)) return []
  const own = procStat(process.pid)?.pgrp
  const mark = `PIPELINE_RUN_ID=${runId}`
  const stageMark = stage === undefined ? undefined : `PIPELINE_STAGE=${stage}`
  const groups = new Map<number, string>()
  for (const p of allProcesses() ?? []) {
    if (!isPid(p.pgrp) || p.pgrp === own || p.pgrp === process.pid || groups.has(p.pgrp)) continue
    const env = environ(p.pid)
    if (!env.includes(mark) || (stageMark !== undefined && !env.includes(stageMark))) continue
    const name = env.find((v) => v.startsWith("PIPELINE_STAGE="))?.slice("PIPELINE_STAGE=".length) ?? "?"
    groups.set(p.pgrp, name)
  }
  const ended: RecordedProcess[] = []
  for (const [pgid, stage] of groups) {
    try {
      process.kill(-pgid, "SIGKILL")
      ended.push({ stage, pgid })
    } catch {}
  }
  // Killed processes may hold files open until they are gone: wait for them before the workspace is touched.
  const deadline = Date.now() + waitMs
  const remaining = () => (allProcesses() ?? []).some((p) => groups.has(p.pgrp))
  while (ended.length > 0 && remaining() && Date.now() < deadline) await sleep(10)
  return ended.sort((a, b) => a.stage.localeCompare(b.stage) || a.pgid - b.pgid)
}
