/**
 * The run cache's records: for a stage fingerprint, the outs a run with that fingerprint produced. This
 * module defines the shape, checks what is read back (a file on disk may be truncated or hand-edited), and
 * keeps the records under the store's `runcache/` (see `RunCache`).
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { ioError, isNotFound, listDir } from "./fs-util.js"
import { isDigest, type PathDigest } from "./hash.js"
import type { TempDir } from "./store-temp.js"

/**
 * An out as the run cache records it, and all `Store.restoreOut` needs: a directory is its digest and
 * total size only, its file list is read from the manifest object when it is restored. A `PathDigest`
 * is one too.
 */
export type OutDigest =
  | { readonly kind: "file"; readonly digest: string; readonly size: number; readonly executable: boolean }
  | { readonly kind: "dir"; readonly digest: string; readonly size: number }

/** One out of a cached run: its project-relative POSIX path and its digest. */
export type OutRecord = OutDigest & { readonly path: string }

/** A run-cache entry: the outs of a successful run of `stage` whose fingerprint was `fingerprint`. */
export interface RunCacheEntry {
  readonly fingerprint: string
  readonly stage: string
  /** ISO 8601 */
  readonly createdAt: string
  readonly outs: ReadonlyArray<OutRecord>
}

/** The record of an out at `path` with digest `d`: drops a directory's file list (it is in the manifest). */
export const outRecord = (path: string, d: PathDigest | OutDigest): OutRecord =>
  d.kind === "file"
    ? { path, kind: "file", digest: d.digest, size: d.size, executable: d.executable }
    : { path, kind: "dir", digest: d.digest, size: d.size }

/** True for a fingerprint the store can use as a file name: lowercase hex, 8 to 128 digits. */
export const isFingerprint = (s: unknown): s is string => typeof s === "string" && /^[0-9a-f]{8,128}$/.test(s)

const isSize = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v)

const parseOut = (v: unknown): OutRecord | undefined => {
  if (!isRecord(v) || typeof v.path !== "string" || !isDigest(v.digest) || !isSize(v.size)) return undefined
  if (v.kind === "file" && typeof v.executable === "boolean") {
    return { path: v.path, kind: "file", digest: v.digest, size: v.size, executable: v.executable }
  }
  if (v.kind === "dir") return { path: v.path, kind: "dir", digest: v.digest, size: v.size }
  return undefined
}

/** The entry in `text` if it is a well-formed entry for `fingerprint`, else undefined. */
export const parseRunCacheEntry = (text: string, fingerprint: string): RunCacheEntry | undefined => {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return undefined
  }
  return entryOf(v, fingerprint)
}

/** `v` as an entry if it is a well-formed entry for `fingerprint`, else undefined. */
const entryOf = (v: unknown, fingerprint: string): RunCacheEntry | undefined => {
  if (!isRecord(v) || v.fingerprint !== fingerprint || typeof v.stage !== "string") return undefined
  if (typeof v.createdAt !== "string" || !Array.isArray(v.outs)) return undefined
  const outs: Array<OutRecord> = []
  for (const o of v.outs) {
    const out = parseOut(o)
    if (out === undefined) return undefined
    outs.push(out)
  }
  return { fingerprint, stage: v.stage, createdAt: v.createdAt, outs }
}

/**
 * One line of the journal: an entry (only the known fields, a directory's file list dropped), or a tombstone
 * that deletes the entries before it.
 */
const formatLine = (v: RunCacheEntry | { readonly fingerprint: string; readonly deleted: true }): string =>
  `${JSON.stringify(
    "deleted" in v
      ? { fingerprint: v.fingerprint, deleted: true }
      : {
          fingerprint: v.fingerprint,
          stage: v.stage,
          createdAt: v.createdAt,
          outs: v.outs.map((o) => outRecord(o.path, o)),
        },
  )}\n`

/**
 * The run cache under the store's `runcache/`: `journal.jsonl`, one line appended per entry recorded (a line
 * with `"deleted": true` removes a fingerprint's entry), the last line for a fingerprint winning; and, read
 * only, the `<2 hex>/<fingerprint>.json` files older versions wrote, one per entry.
 *
 * Why a journal: recording an entry is on the way of every stage that runs, and on some disks creating a file
 * costs about a millisecond of kernel time, where appending a line costs microseconds. A line cut short by a
 * crash does not parse and is skipped (the next append starts on a line of its own). Appends are single
 * `write` calls with O_APPEND, so projects sharing a store may append at the same time. `gc` compacts the
 * journal (see `compact`), which is why it must not run on a shared store while another project runs.
 */
export class RunCache {
  /** the journal's entries by fingerprint (undefined: deleted), read on first use */
  private index: Map<string, RunCacheEntry | undefined> | undefined
  /** lines in the journal, to tell when compacting would pay */
  private lines = 0
  /** the journal does not end with a line break (a write cut short): the next append starts a new line */
  private torn = false
  /** whether the store has legacy entry files at all, looked at once (most have none) */
  private legacy: boolean | undefined

  constructor(
    private readonly root: string,
    /** where the compacted journal is written before it is renamed into place */
    private readonly temp: TempDir,
  ) {}

  private get journal(): string {
    return join(this.root, "journal.jsonl")
  }

  /** Whether `runcache/` has any `<2 hex>/` folder of legacy entry files. */
  private hasLegacyFolders(): boolean {
    try {
      return readdirSync(this.root).some((name) => /^[0-9a-f]{2}$/.test(name))
    } catch (e) {
      if (isNotFound(e)) return false
      throw ioError("read", this.root, e)
    }
  }

  /** A legacy entry file's path. */
  private legacyPath(fingerprint: string): string {
    if (!isFingerprint(fingerprint)) throw new TypeError(`not a fingerprint: ${JSON.stringify(fingerprint)}`)
    return join(this.root, fingerprint.slice(0, 2), `${fingerprint}.json`)
  }

  /** The journal read into `index` (once; this process's own appends keep it current). */
  private load(): Map<string, RunCacheEntry | undefined> {
    if (this.index !== undefined) return this.index
    const index = new Map<string, RunCacheEntry | undefined>()
    let text = ""
    try {
      text = readFileSync(this.journal, "utf8")
    } catch (e) {
      if (!isNotFound(e)) throw ioError("read", this.journal, e)
    }
    this.torn = text !== "" && !text.endsWith("\n")
    for (const line of text.split("\n")) {
      if (line === "") continue
      this.lines++
      let v: unknown
      try {
        v = JSON.parse(line)
      } catch {
        continue
      }
      if (!isRecord(v) || !isFingerprint(v.fingerprint)) continue
      if (v.deleted === true) index.set(v.fingerprint, undefined)
      else {
        const entry = entryOf(v, v.fingerprint)
        if (entry !== undefined) index.set(v.fingerprint, entry)
      }
    }
    this.index = index
    return index
  }

  private append(line: string): void {
    this.load()
    try {
      appendFileSync(this.journal, this.torn ? `\n${line}` : line)
    } catch (e) {
      if (!isNotFound(e)) throw ioError("write", this.journal, e)
      // runcache/ was removed while the store was open: make it again
      mkdirSync(this.root, { recursive: true })
      appendFileSync(this.journal, line)
    }
    this.torn = false
    this.lines++
  }

  /**
   * The run-cache entry for `fingerprint`; a corrupt one counts as missing (a corrupt legacy file is
   * deleted). Synchronous on purpose: a rerun reads one entry per stage, from memory once the journal is read.
   */
  get(fingerprint: string): RunCacheEntry | undefined {
    const index = this.load()
    if (index.has(fingerprint)) return index.get(fingerprint)
    // A first run looks up every stage and finds nothing: a store with no legacy folder needs no more looking,
    // and asking first is cheaper than a thrown ENOENT.
    this.legacy ??= this.hasLegacyFolders()
    if (!this.legacy) return undefined
    const path = this.legacyPath(fingerprint)
    if (!existsSync(path)) return undefined
    let text: string
    try {
      text = readFileSync(path, "utf8")
    } catch (e) {
      if (isNotFound(e)) return undefined
      throw ioError("read", path, e)
    }
    const entry = parseRunCacheEntry(text, fingerprint)
    if (entry === undefined) {
      try {
        rmSync(path, { force: true })
      } catch {}
    }
    return entry
  }

  /**
   * Record a run-cache entry (after `putOut` of each of its outs), replacing any for the same fingerprint.
   * Synchronous: one appended line, written once per stage that ran.
   */
  put(entry: RunCacheEntry): void {
    if (!isFingerprint(entry.fingerprint))
      throw new TypeError(`not a fingerprint: ${JSON.stringify(entry.fingerprint)}`)
    this.append(formatLine(entry))
    this.load().set(entry.fingerprint, entry)
  }

  /** Delete the run-cache entry for `fingerprint`, if any. */
  async delete(fingerprint: string): Promise<void> {
    const path = this.legacyPath(fingerprint)
    await rm(path, { force: true }).catch((e: unknown) => {
      throw ioError("remove", path, e)
    })
    if (this.load().get(fingerprint) === undefined) return
    this.append(formatLine({ fingerprint, deleted: true }))
    this.load().set(fingerprint, undefined)
  }

  /**
   * Every valid run-cache entry with the time it was recorded (`mtimeMs`: an entry's `createdAt`, a legacy
   * file's modification time); corrupt legacy files are deleted on the way.
   */
  async *list(): AsyncIterable<RunCacheEntry & { readonly mtimeMs: number }> {
    const index = this.load()
    for (const entry of [...index.values()]) {
      if (entry === undefined) continue
      const at = Date.parse(entry.createdAt)
      yield { ...entry, mtimeMs: Number.isNaN(at) ? 0 : at }
    }
    const root = this.root
    for (const prefix of await listDir(root)) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue
      for (const name of await listDir(join(root, prefix))) {
        const fingerprint = name.endsWith(".json") ? name.slice(0, -5) : ""
        if (!isFingerprint(fingerprint) || !fingerprint.startsWith(prefix) || index.has(fingerprint)) continue
        const path = join(root, prefix, name)
        const [text, st] = await Promise.all([readFile(path, "utf8"), stat(path)]).catch((e: unknown) => {
          if (isNotFound(e)) return [undefined, undefined] as const
          throw ioError("read", path, e)
        })
        if (text === undefined || st === undefined) continue
        const entry = parseRunCacheEntry(text, fingerprint)
        if (entry === undefined) await rm(path, { force: true }).catch(() => undefined)
        else yield { ...entry, mtimeMs: st.mtimeMs }
      }
    }
  }

  /**
   * Rewrite the journal with one line per entry (after `gc` deleted some): written whole under the store's
   * temp folder and renamed over it, so a crash leaves the old journal or the new one. Appends another
   * process makes meanwhile would be lost: only while nothing else uses the store (`gc` holds the project
   * lock; a shared store is the user's to keep quiet).
   */
  async compact(): Promise<void> {
    const index = this.load()
    const live = [...index.values()].filter((e): e is RunCacheEntry => e !== undefined)
    if (this.lines === live.length && !this.torn) return
    const tmp = await this.temp.path()
    try {
      await writeFile(tmp, live.map(formatLine).join(""))
      await rename(tmp, this.journal)
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined)
      throw ioError("write", this.journal, e)
    }
    for (const [fp, e] of [...index]) if (e === undefined) index.delete(fp)
    this.lines = live.length
    this.torn = false
  }
}
