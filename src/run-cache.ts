/**
 * The run cache's records: for a stage fingerprint, the outs a run with that fingerprint produced. The
 * store keeps one JSON file per fingerprint (see `Store.getRunCache`); this module defines the shape and
 * checks what is read back, since a file on disk may be truncated or hand-edited.
 */
import { existsSync, readFileSync, rmSync } from "node:fs"
import { readFile, rm, stat } from "node:fs/promises"
import { join } from "node:path"
import { ioError, isNotFound, listDir, renameInto } from "./fs-util.js"
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

/** The canonical text of an entry (only the known fields, a directory's file list dropped). */
export const formatRunCacheEntry = (entry: RunCacheEntry): string =>
  `${JSON.stringify(
    {
      fingerprint: entry.fingerprint,
      stage: entry.stage,
      createdAt: entry.createdAt,
      outs: entry.outs.map((o) => outRecord(o.path, o)),
    },
    null,
    2,
  )}\n`

/**
 * The run-cache files under the store's `runcache/`: `<2 hex>/<fingerprint>.json`, each written to a
 * temp file first and renamed into place. Used through `Store`.
 */
export class RunCache {
  /** `runcache/<2 hex>/` folders known to exist */
  private readonly made = new Set<string>()

  constructor(
    private readonly root: string,
    /** where entries are written before they are renamed into place */
    private readonly temp: TempDir,
  ) {}

  /** The file of a fingerprint's entry. */
  private path(fingerprint: string): string {
    if (!isFingerprint(fingerprint)) throw new TypeError(`not a fingerprint: ${JSON.stringify(fingerprint)}`)
    return join(this.root, fingerprint.slice(0, 2), `${fingerprint}.json`)
  }

  /**
   * The run-cache entry for `fingerprint`; a corrupt one counts as missing and is deleted. Synchronous on
   * purpose: a rerun reads one small entry per stage, and a thread-pool round trip per read cost more than the
   * read itself (~1 ms vs ~10 µs on a 1,000-stage pipeline).
   */
  get(fingerprint: string): RunCacheEntry | undefined {
    const path = this.path(fingerprint)
    // A first run looks up every stage and finds nothing: asking first is cheaper than a thrown ENOENT.
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
   * Synchronous: an entry is a few hundred bytes, written once per stage that ran.
   */
  put(entry: RunCacheEntry): void {
    const path = this.path(entry.fingerprint)
    let tmp: string
    try {
      tmp = this.temp.writeSync(formatRunCacheEntry(entry))
    } catch (e) {
      throw ioError("write", path, e)
    }
    try {
      renameInto(tmp, path, this.made)
    } catch (e) {
      rmSync(tmp, { force: true })
      throw ioError("write", path, e)
    }
  }

  /** Delete the run-cache entry for `fingerprint`, if any. */
  async delete(fingerprint: string): Promise<void> {
    const path = this.path(fingerprint)
    await rm(path, { force: true }).catch((e: unknown) => {
      throw ioError("remove", path, e)
    })
  }

  /** Every valid run-cache entry with its file's mtime (corrupt ones are deleted on the way). */
  async *list(): AsyncIterable<RunCacheEntry & { readonly mtimeMs: number }> {
    const root = this.root
    for (const prefix of await listDir(root)) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue
      for (const name of await listDir(join(root, prefix))) {
        const fingerprint = name.endsWith(".json") ? name.slice(0, -5) : ""
        if (!isFingerprint(fingerprint) || !fingerprint.startsWith(prefix)) continue
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
}
