/**
 * The project lock: one `pipeline run` (or `gc`) at a time per store. A second waits for nothing: it fails at
 * once with a message naming the holder. A lock whose holder is no longer alive (a killed run) is stale and
 * is taken over.
 */
import { open, readFile, rm } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import { ProjectLocked, StoreIOError } from "./errors.js"

interface Holder {
  readonly pid: number
  readonly startedAt: string
  readonly command: string
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

const tryCreate = async (file: string, holder: Holder): Promise<boolean> => {
  try {
    const fh = await open(file, "wx")
    await fh.writeFile(JSON.stringify(holder))
    await fh.close()
    return true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false
    throw e
  }
}

const readHolder = async (file: string): Promise<Holder | undefined> => {
  try {
    const v = JSON.parse(await readFile(file, "utf8")) as Partial<Holder>
    return typeof v.pid === "number"
      ? { pid: v.pid, startedAt: String(v.startedAt), command: String(v.command) }
      : undefined
  } catch {
    return undefined
  }
}

/** Hold the lock in `dir` for the scope's lifetime. */
export const projectLock = (dir: string, command: string) => {
  const file = join(dir, "run.lock")
  const acquire = Effect.tryPromise({
    try: async (): Promise<ProjectLocked | undefined> => {
      const me: Holder = { pid: process.pid, startedAt: new Date().toISOString(), command }
      for (let i = 0; i < 3; i++) {
        if (await tryCreate(file, me)) return undefined
        const holder = await readHolder(file)
        if (holder && alive(holder.pid) && holder.pid !== process.pid)
          return new ProjectLocked({ pid: holder.pid, startedAt: holder.startedAt, lockFile: file })
        await rm(file, { force: true }) // stale: its holder died without releasing it
      }
      throw new Error("could not take the lock after removing a stale one three times")
    },
    catch: (e) =>
      new StoreIOError({
        op: "lock",
        path: file,
        message: `cannot take the project lock ${file}: ${String(e)}`,
      }),
  }).pipe(Effect.flatMap((locked) => (locked ? Effect.fail(locked) : Effect.void)))
  return Effect.acquireRelease(acquire, () => Effect.promise(() => rm(file, { force: true })))
}
