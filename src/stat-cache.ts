/**
 * Remembers file digests by absolute path so unchanged files are not re-read (DVC's state database).
 * An entry holds only while the file's size, mtime, ctime and inode all still match. The cache is one
 * JSON file, loaded whole and written atomically; a missing or unreadable one is an empty cache.
 */
import type { BigIntStats } from "node:fs"
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import { dirname } from "node:path"
import { ioError, randomSuffix } from "./fs-util.js"

/** What must stay the same for a cached digest to stay valid: size, mtime, ctime (ns) and inode. */
export const statKey = (st: BigIntStats): string => `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}`

interface Entry {
  key: string
  digest: string
  /** the last day (days since the epoch) it was read or written: old entries are dropped */
  day: number
}

const FORMAT_VERSION = 1
/** Entries nobody looked up for this many days are dropped (deleted files, old checkouts). */
const MAX_IDLE_DAYS = 30
/** Past this, the least recently used entries go: the file is loaded whole on every run. */
const MAX_ENTRIES = 500_000

const today = (): number => Math.floor(Date.now() / 86_400_000)

const DIGEST = /^[0-9a-f]{64}$/
const KEY = /^\d+:\d+:\d+:\d+$/

/** What this process saw of a file: its stat key when it was hashed (or its digest looked up), and the digest. */
export interface Observation {
  readonly key: string
  readonly digest: string
}

/** Digests by absolute path, valid while the file's stat matches. */
export class StatCache {
  private dirty = false
  /**
   * The last digest this process hashed or looked up for each file, with the stat it had then: recently
   * written ("racy") files included, which the cache itself does not keep. A run's no-op snapshot
   * (`snapshot.ts`) checks its files against these, so that it describes the files the run recorded.
   */
  private readonly seen = new Map<string, Observation>()

  private constructor(
    private readonly file: string | undefined,
    private readonly entries: Map<string, Entry>,
  ) {}

  /** A cache that lives in memory only (`save` does nothing). */
  static memory(): StatCache {
    return new StatCache(undefined, new Map())
  }

  /** Load the cache kept in `file`; a missing, unreadable or corrupt file gives an empty cache. */
  static async load(file: string): Promise<StatCache> {
    const entries = new Map<string, Entry>()
    let text: string
    try {
      text = await readFile(file, "utf8")
    } catch {
      return new StatCache(file, entries)
    }
    let pruned = false
    try {
      const data: unknown = JSON.parse(text)
      if (typeof data === "object" && data !== null && "version" in data && "entries" in data) {
        if (data.version === FORMAT_VERSION && Array.isArray(data.entries)) {
          const oldest = today() - MAX_IDLE_DAYS
          for (const row of data.entries as Array<unknown>) {
            if (!Array.isArray(row) || row.length !== 4) continue
            const [path, key, digest, day] = row as [unknown, unknown, unknown, unknown]
            if (typeof path !== "string" || typeof key !== "string" || typeof digest !== "string") continue
            if (typeof day !== "number" || !KEY.test(key) || !DIGEST.test(digest)) continue
            if (day < oldest) pruned = true
            else entries.set(path, { key, digest, day })
          }
        }
      }
    } catch {
      entries.clear()
    }
    const cache = new StatCache(file, entries)
    cache.dirty = pruned
    return cache
  }

  /** Number of entries. */
  get size(): number {
    return this.entries.size
  }

  /** The digest recorded for `abs`, if its stat `st` still matches the one recorded with it. */
  get(abs: string, st: BigIntStats): string | undefined {
    const entry = this.entries.get(abs)
    if (entry === undefined || entry.key !== statKey(st)) return undefined
    this.seen.set(abs, entry)
    const day = today()
    if (entry.day !== day) {
      entry.day = day
      this.dirty = true
    }
    return entry.digest
  }

  /** Record that the file at `abs`, with stat `st`, has content digest `digest`. */
  set(abs: string, st: BigIntStats, digest: string): void {
    const key = statKey(st)
    this.seen.set(abs, { key, digest })
    const day = today()
    const entry = this.entries.get(abs)
    if (entry !== undefined && entry.key === key && entry.digest === digest && entry.day === day) return
    this.entries.set(abs, { key, digest, day })
    this.dirty = true
  }

  /**
   * Note that the file at `abs` had stat `st` and digest `digest` when this process hashed it, without
   * caching the digest (a file written too recently for its stat to be trusted on a later run).
   */
  saw(abs: string, st: BigIntStats, digest: string): void {
    this.seen.set(abs, { key: statKey(st), digest })
  }

  /** What this process last saw of the file at `abs` (see `saw`), if it hashed or looked it up. */
  observed(abs: string): Observation | undefined {
    return this.seen.get(abs)
  }

  /** Forget `abs`. */
  delete(abs: string): void {
    if (this.entries.delete(abs)) this.dirty = true
  }

  /**
   * Write the cache back if anything changed: to a temp file beside it, then renamed over it, so a
   * reader never sees half a file. Fails with `StoreIOError`; callers may ignore that (it is a cache).
   */
  async save(): Promise<void> {
    if (this.file === undefined || !this.dirty) return
    let rows = [...this.entries].map(([path, e]) => [path, e.key, e.digest, e.day] as const)
    if (rows.length > MAX_ENTRIES) {
      rows = rows.sort((a, b) => b[3] - a[3]).slice(0, MAX_ENTRIES)
      this.entries.clear()
      for (const [path, key, digest, day] of rows) this.entries.set(path, { key, digest, day })
    }
    const text = JSON.stringify({ version: FORMAT_VERSION, entries: rows })
    const tmp = `${this.file}.${process.pid}-${randomSuffix()}.tmp`
    this.dirty = false
    try {
      await mkdir(dirname(this.file), { recursive: true })
      await writeFile(tmp, text)
      await rename(tmp, this.file)
    } catch (e) {
      this.dirty = true
      await rm(tmp, { force: true }).catch(() => undefined)
      throw ioError("write", this.file, e)
    }
  }
}
