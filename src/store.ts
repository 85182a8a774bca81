/**
 * The content-addressed artifact store (a DVC-like cache), under one directory:
 *
 *   objects/<2 hex>/<62 hex>          file contents and directory manifests, named by SHA-256, mode 0444
 *   runcache/journal.jsonl            the outs of each successful run, by stage fingerprint, one line each
 *   tmp/<pid>-<random>/               this process's temp files; everything is written here, then renamed
 *
 * Nothing partial is ever visible at an object path or an out path: both are only ever renamed into
 * place whole. This class is the store's one face; each concept lives in its own module: the objects
 * (`store-objects.ts`), saving outs (`store-write.ts`), restoring them (`store-restore.ts`), the temp
 * folders (`store-temp.ts`) and the run cache (`run-cache.ts`).
 */
import { mkdir } from "node:fs/promises"
import { join, resolve } from "node:path"
import { ioError } from "./fs-util.js"
import type { DirDigest, PathDigest } from "./hash.js"
import { type OutDigest, RunCache, type RunCacheEntry } from "./run-cache.js"
import type { StatCache } from "./stat-cache.js"
import { Objects, type StoreStats } from "./store-objects.js"
import { restoreOut } from "./store-restore.js"
import { cleanTmp, TempDir } from "./store-temp.js"
import { ObjectWriter } from "./store-write.js"

export type { StoreStats } from "./store-objects.js"

/** The artifact store. Every method fails with `StoreIOError` or `StoreCorrupt`. */
export class Store {
  private readonly objects: Objects
  private readonly writer: ObjectWriter
  private readonly runCache: RunCache

  private constructor(
    /** the store's root directory */
    readonly dir: string,
    private readonly temp: TempDir,
  ) {
    this.objects = new Objects(join(dir, "objects"))
    this.writer = new ObjectWriter(this.objects, temp)
    this.runCache = new RunCache(join(dir, "runcache"), temp)
  }

  /** Open (creating if needed) the store in `dir`, cleaning temp files left by killed runs. */
  static async open(dir: string): Promise<Store> {
    const root = resolve(dir)
    try {
      for (const sub of ["objects", "runcache", "tmp"]) await mkdir(join(root, sub), { recursive: true })
      await cleanTmp(join(root, "tmp"))
    } catch (e) {
      throw ioError("open the store at", root, e)
    }
    return new Store(root, new TempDir(join(root, "tmp")))
  }

  /** Remove this process's temp folder. */
  close(): Promise<void> {
    return this.temp.remove()
  }

  /** Where the object with `digest` lives (whether or not it exists). */
  objectPath(digest: string): string {
    return this.objects.path(digest)
  }

  /** Whether the object `digest` is in the store (its content is not checked). */
  has(digest: string): Promise<boolean> {
    return this.objects.has(digest)
  }

  /**
   * Save the out at `abs` into the store, given the digest `digestPath` computed for it: a file as one
   * object, a directory as one object per file plus its manifest. Objects already present are skipped.
   * Fails with `StoreIOError` if the content no longer matches `d`. A small file is saved (or the failure
   * thrown) before this returns; anything else gives a promise.
   */
  putOut(abs: string, d: PathDigest): void | Promise<void> {
    return this.writer.putOut(abs, d)
  }

  /** `putOut` for a small file whose bytes were read when it was hashed to `digest` (no second read). */
  putSmallBytes(digest: string, bytes: Buffer): void {
    this.writer.putSmallBytes(digest, bytes)
  }

  /**
   * The manifest object `digest` as a directory digest. A missing object, or one whose bytes do not hash
   * to `digest` (it is removed), or one that is not a manifest, fails with `StoreCorrupt`.
   */
  readManifest(digest: string): Promise<DirDigest> {
    return this.objects.readManifest(digest)
  }

  /**
   * Put the out `d` back at `absDest`, verifying every file against its digest (see `store-restore.ts`).
   * Missing or corrupt objects fail with `StoreCorrupt` and leave the destination untouched.
   */
  restoreOut(d: OutDigest, absDest: string, cache: StatCache): Promise<void> {
    return restoreOut(this.objects, d, absDest, cache)
  }

  /** The run-cache entry for `fingerprint`; a corrupt one counts as missing and is deleted. */
  getRunCache(fingerprint: string): RunCacheEntry | undefined {
    return this.runCache.get(fingerprint)
  }

  /** Record a run-cache entry (after `putOut` of each of its outs), replacing any for the same fingerprint. */
  putRunCache(entry: RunCacheEntry): void {
    this.runCache.put(entry)
  }

  /** Delete the run-cache entry for `fingerprint`, if any. */
  deleteRunCache(fingerprint: string): Promise<void> {
    return this.runCache.delete(fingerprint)
  }

  /** Rewrite the run-cache journal without deleted and replaced entries (see `RunCache.compact`). */
  compactRunCache(): Promise<void> {
    return this.runCache.compact()
  }

  /** Every valid run-cache entry with when it was recorded (corrupt ones are deleted on the way). */
  listRunCache(): AsyncIterable<RunCacheEntry & { readonly mtimeMs: number }> {
    return this.runCache.list()
  }

  /** The digest of every object in the store. */
  listObjects(): AsyncIterable<string> {
    return this.objects.list()
  }

  /** Whether object `digest` exists and its content still hashes to `digest`. */
  verifyObject(digest: string): Promise<boolean> {
    return this.objects.verify(digest)
  }

  /** Remove object `digest` (nothing if it is not there; a link is removed, never followed). */
  removeObject(digest: string): Promise<void> {
    return this.objects.remove(digest)
  }

  /** Every object an out references (see `Objects.of`). */
  objectsOf(out: OutDigest): Promise<Set<string>> {
    return this.objects.of(out)
  }

  /** Object count and total size. */
  stats(): Promise<StoreStats> {
    return this.objects.stats()
  }
}
