/**
 * The store's temp folders, `tmp/<pid>-<random>/`: one per open store, where every object and the compacted
 * run-cache journal are written before they are renamed into place (a rename within one file system is atomic, so nothing partial is
 * ever visible under `objects/` or `runcache/`). What a killed process left there is removed by the next store
 * opened on the same folder.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs"
import { lstat, mkdir, readdir, rm } from "node:fs/promises"
import { join } from "node:path"
import { errorCode, ioError, randomSuffix } from "./fs-util.js"

const HOUR_MS = 60 * 60 * 1000

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return errorCode(e) === "EPERM"
  }
}

/**
 * Remove what killed runs left in tmp/: folders of processes that are gone, folders of live pids idle
 * for a day (the pid was reused; a live store recreates its folder on demand), anything else after an
 * hour. Best effort: a concurrent open may be removing the same thing.
 */
export const cleanTmp = async (tmpRoot: string): Promise<void> => {
  const now = Date.now()
  for (const name of await readdir(tmpRoot)) {
    const abs = join(tmpRoot, name)
    const pid = /^(\d+)-[0-9a-f]+$/.exec(name)?.[1]
    const mtimeMs = await lstat(abs).then(
      (st) => st.mtimeMs,
      () => undefined,
    )
    if (mtimeMs === undefined) continue
    const stale =
      pid === undefined ? now - mtimeMs > HOUR_MS : !pidAlive(Number(pid)) || now - mtimeMs > 24 * HOUR_MS
    if (stale) await rm(abs, { recursive: true, force: true }).catch(() => undefined)
  }
}

/** This process's temp folder under a store's `tmp/`. */
export class TempDir {
  /** the folder (created on demand) */
  readonly dir: string
  /** temp files are numbered: the folder is this process's alone */
  private count = 0

  constructor(tmpRoot: string) {
    this.dir = join(tmpRoot, `${process.pid}-${randomSuffix()}`)
  }

  private next(): string {
    this.count++
    return join(this.dir, String(this.count))
  }

  /** A fresh temp path in the folder (recreated if something removed it). */
  async path(): Promise<string> {
    try {
      await mkdir(this.dir, { recursive: true })
    } catch (e) {
      throw ioError("create", this.dir, e)
    }
    return this.next()
  }

  /**
   * Write `data` to a new temp file and give its path; on failure nothing is left behind. The folder is
   * created when a write finds it missing (the first one, or after something removed it), not checked before
   * every write: this is on the way of every stage that runs.
   */
  writeSync(data: string | Buffer, mode = 0o666): string {
    const tmp = this.next()
    const write = () => writeFileSync(tmp, data, { mode, flag: "wx" })
    try {
      try {
        write()
      } catch (e) {
        if (errorCode(e) !== "ENOENT") throw e
        mkdirSync(this.dir, { recursive: true })
        write()
      }
    } catch (e) {
      rmSync(tmp, { force: true })
      throw e
    }
    return tmp
  }

  /** Remove the folder and whatever is left in it. */
  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined)
  }
}
