/**
 * The content-addressed artifact store (a DVC-like cache), under one directory:
 *
 *   objects/<2 hex>/<62 hex>          file contents and directory manifests, named by SHA-256, mode 0444
 *   runcache/<2 hex>/<fingerprint>.json   the outs of a successful run, by stage fingerprint
 *   tmp/<pid>-<random>/               this process's temp files; everything is written here, then renamed
 *
 * Nothing partial is ever visible at an object path or an out path: both are only ever renamed into
 * place whole. We run as root, which writes through 0444, so objects are never hard-linked into the
 * workspace: a restore is a copy, and a stage writing its out cannot damage the store.
 *
 * Restores copy by streaming (read the object once, hash and write each chunk) rather than by
 * `copyFile(COPYFILE_FICLONE)` followed by a hashing pass: a reflink is free only on btrfs/XFS, and
 * everywhere else that falls back to a full copy and then a second read of every byte to verify it.
 * Streaming always costs one read and one write, and the bytes hashed are the bytes written.
 */
import { createHash } from "node:crypto"
import {
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs"
import { type FileHandle, lstat, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises"
import { basename, dirname, join, resolve } from "node:path"
import { StoreCorrupt, StoreIOError } from "./errors.js"
import {
  copyHashing,
  errorCode,
  forEachLimit,
  ioError,
  isNotFound,
  listDir,
  randomSuffix,
  readChunks,
  removeLeftovers,
  swapIn,
  writeFully,
} from "./fs-util.js"
import {
  type DirDigest,
  type FileEntry,
  isDigest,
  manifestBytes,
  type PathDigest,
  parseManifest,
  sha256Bytes,
} from "./hash.js"
import { type OutDigest, RunCache, type RunCacheEntry } from "./run-cache.js"
import type { StatCache } from "./stat-cache.js"

/** Files copied at once when saving or restoring a directory. */
const COPY_CONCURRENCY = 8
/** Files up to this size are saved and hashed with synchronous calls (see `putSmallFile`). */
export const SMALL_FILE = 256 * 1024
const HOUR_MS = 60 * 60 * 1000

const readFlags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK

/** An object path holding a symbolic link (refused by O_NOFOLLOW) or a directory: not an object. */
const notAFile = (e: unknown): boolean => {
  const code = errorCode(e)
  return code === "ELOOP" || code === "EISDIR" || code === "ERR_FS_EISDIR"
}

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
const cleanTmp = async (tmpRoot: string): Promise<void> => {
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

/** Object count and total bytes, for gc reports. */
export interface StoreStats {
  readonly objects: number
  readonly bytes: number
}

/** The artifact store. Every method fails with `StoreIOError` or `StoreCorrupt`. */
export class Store {
  private constructor(
    /** the store's root directory */
    readonly dir: string,
    private readonly tmpDir: string,
  ) {
    this.runCache = new RunCache(join(dir, "runcache"), () => this.tempPath())
  }

  private readonly runCache: RunCache

  /** Open (creating if needed) the store in `dir`, cleaning temp files left by killed runs. */
  static async open(dir: string): Promise<Store> {
    const root = resolve(dir)
    try {
      for (const sub of ["objects", "runcache", "tmp"]) await mkdir(join(root, sub), { recursive: true })
      await cleanTmp(join(root, "tmp"))
    } catch (e) {
      throw ioError("open the store at", root, e)
    }
    return new Store(root, join(root, "tmp", `${process.pid}-${randomSuffix()}`))
  }

  /** Remove this process's temp folder. */
  async close(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true }).catch(() => undefined)
  }

  /** Where the object with `digest` lives (whether or not it exists). */
  objectPath(digest: string): string {
    if (!isDigest(digest)) throw new TypeError(`not a SHA-256 digest: ${JSON.stringify(digest)}`)
    return join(this.dir, "objects", digest.slice(0, 2), digest.slice(2))
  }

  /** Whether the object `digest` is in the store (its content is not checked). */
  async has(digest: string): Promise<boolean> {
    const path = this.objectPath(digest)
    try {
      return (await lstat(path)).isFile()
    } catch (e) {
      if (isNotFound(e)) return false
      throw ioError("stat", path, e)
    }
  }

  /** A fresh temp path in this process's temp folder (recreated if something removed it). */
  private async tempPath(): Promise<string> {
    try {
      await mkdir(this.tmpDir, { recursive: true })
    } catch (e) {
      throw ioError("create", this.tmpDir, e)
    }
    return join(this.tmpDir, randomSuffix())
  }

  /** Rename a finished, read-only temp file to its object path. */
  private async publish(tmp: string, digest: string): Promise<void> {
    const dest = this.objectPath(digest)
    try {
      await mkdir(dirname(dest), { recursive: true })
      // Renaming over an identical object a concurrent writer just put there is harmless.
      await rename(tmp, dest)
    } catch (e) {
      throw ioError("write", dest, e)
    }
  }

  /**
   * Whether a complete-looking object is already there. One of the wrong size (a torn write after a
   * power loss) is removed so it gets rewritten.
   */
  private async present(digest: string, size: number): Promise<boolean> {
    const path = this.objectPath(digest)
    try {
      const st = await lstat(path)
      if (st.isFile() && st.size === size) return true
      await rm(path, { recursive: true, force: true })
      return false
    } catch (e) {
      if (isNotFound(e)) return false
      throw ioError("stat", path, e)
    }
  }

  /**
   * `putFile` for a small file, synchronously: most outs are small, and for them the thread-pool round trips
   * of the streaming path (open, read, write, chmod, close, rename: ~10 of them) cost more than the copy.
   */
  private putSmallFile(abs: string, digest: string, size: number): void {
    const dest = this.objectPath(digest)
    try {
      const st = lstatSync(dest, { throwIfNoEntry: false })
      if (st?.isFile() && st.size === size) return
      if (st) rmSync(dest, { recursive: true, force: true })
    } catch (e) {
      throw ioError("stat", dest, e)
    }
    let bytes: Buffer
    try {
      const fd = openSync(abs, readFlags)
      try {
        bytes = readFileSync(fd)
      } finally {
        closeSync(fd)
      }
    } catch (e) {
      throw ioError("read", abs, e)
    }
    if (sha256Bytes(bytes) !== digest)
      throw new StoreIOError({
        op: "save",
        path: abs,
        message: `${abs} changed while it was being saved to the store; is something still writing it?`,
      })
    mkdirSync(this.tmpDir, { recursive: true })
    const tmp = join(this.tmpDir, randomSuffix())
    try {
      writeFileSync(tmp, bytes, { mode: 0o444, flag: "wx" })
      mkdirSync(dirname(dest), { recursive: true })
      renameSync(tmp, dest)
    } catch (e) {
      rmSync(tmp, { force: true })
      throw ioError("write", dest, e)
    }
  }

  /** Save `bytes`, whose SHA-256 is `digest`, as an object. */
  private async putBytes(digest: string, bytes: Buffer): Promise<void> {
    if (await this.present(digest, bytes.length)) return
    const tmp = await this.tempPath()
    try {
      const fh = await open(tmp, "wx", 0o444).catch((e: unknown) => {
        throw ioError("write", this.objectPath(digest), e)
      })
      try {
        await writeFully(fh, bytes).catch((e: unknown) => {
          throw ioError("write", this.objectPath(digest), e)
        })
        await fh.chmod(0o444)
      } finally {
        await fh.close()
      }
      await this.publish(tmp, digest)
    } finally {
      await rm(tmp, { force: true }).catch(() => undefined)
    }
  }

  /** Save the workspace file `abs`, expected to hash to `digest`, as an object. */
  private async putFile(abs: string, digest: string, size: number): Promise<void> {
    if (size <= SMALL_FILE) return this.putSmallFile(abs, digest, size)
    if (await this.present(digest, size)) return
    const dest = this.objectPath(digest)
    const tmp = await this.tempPath()
    try {
      const from = await open(abs, readFlags).catch((e: unknown) => {
        throw ioError("read", abs, e)
      })
      try {
        const to = await open(tmp, "wx", 0o444).catch((e: unknown) => {
          throw ioError("write", dest, e)
        })
        try {
          const actual = await copyHashing(from, abs, to, dest, size)
          if (actual !== digest) {
            throw new StoreIOError({
              op: "save",
              path: abs,
              message: `${abs} changed while it was being saved to the store; is something still writing it?`,
            })
          }
          await to.chmod(0o444)
        } finally {
          await to.close()
        }
      } finally {
        await from.close()
      }
      await this.publish(tmp, digest)
    } finally {
      await rm(tmp, { force: true }).catch(() => undefined)
    }
  }

  /**
   * Save the out at `abs` into the store, given the digest `digestPath` computed for it: a file as one
   * object, a directory as one object per file plus its manifest. Objects already present are skipped.
   * Fails with `StoreIOError` if the content no longer matches `d`.
   */
  async putOut(abs: string, d: PathDigest): Promise<void> {
    if (d.kind === "file") return this.putFile(abs, d.digest, d.size)
    await forEachLimit(d.files, COPY_CONCURRENCY, (f) => this.putFile(join(abs, f.path), f.digest, f.size))
    const manifest = manifestBytes(d.files)
    if (sha256Bytes(manifest) !== d.digest) {
      throw new TypeError(`putOut(${abs}): the file list does not match the directory digest ${d.digest}`)
    }
    await this.putBytes(d.digest, manifest)
  }

  /**
   * The manifest object `digest` as a directory digest. A missing object, or one whose bytes do not hash
   * to `digest` (it is removed), or one that is not a manifest, fails with `StoreCorrupt`.
   */
  async readManifest(digest: string): Promise<DirDigest> {
    const path = this.objectPath(digest)
    let bytes: Buffer
    try {
      bytes = await readFile(path, { flag: readFlags })
    } catch (e) {
      if (isNotFound(e)) throw new StoreCorrupt({ digest, path })
      if (notAFile(e)) {
        await this.removeObject(digest)
        throw new StoreCorrupt({ digest, path })
      }
      throw ioError("read", path, e)
    }
    if (sha256Bytes(bytes) !== digest) {
      await this.removeObject(digest)
      throw new StoreCorrupt({ digest, path })
    }
    const files = parseManifest(bytes)
    if (files === undefined) throw new StoreCorrupt({ digest, path })
    return { kind: "dir", digest, size: files.reduce((total, f) => total + f.size, 0), files }
  }

  /**
   * Copy object `digest` to the new file `dest` with the given mode, verifying its digest on the way; write
   * errors name `reportAs` (the out, not its temp name). A missing or corrupt object fails with
   * `StoreCorrupt`; a corrupt one is removed from the store. So is an object that is not a regular file (a
   * symbolic link is never followed out of the store).
   */
  private async copyOut(
    digest: string,
    size: number,
    dest: string,
    executable: boolean,
    reportAs: string,
  ): Promise<void> {
    const path = this.objectPath(digest)
    const from = await open(path, readFlags).catch(async (e: unknown) => {
      if (isNotFound(e)) throw new StoreCorrupt({ digest, path })
      if (!notAFile(e)) throw ioError("read", path, e)
      await this.removeObject(digest)
      throw new StoreCorrupt({ digest, path })
    })
    try {
      if (!(await from.stat()).isFile()) {
        await this.removeObject(digest)
        throw new StoreCorrupt({ digest, path })
      }
      const to = await open(dest, "wx", 0o600).catch((e: unknown) => {
        throw ioError("write", reportAs, e)
      })
      try {
        if ((await copyHashing(from, path, to, reportAs, size)) !== digest) {
          await this.removeObject(digest)
          throw new StoreCorrupt({ digest, path })
        }
        await to.chmod(executable ? 0o755 : 0o644)
      } finally {
        await to.close()
      }
    } finally {
      await from.close()
    }
  }

  /**
   * Put the out `d` back at `absDest`: build it beside the destination under a hidden temp name,
   * verifying every file against its digest, then swap it in for whatever is there (a symlink there is
   * replaced, never written through). Files get mode 0644 (0755 if executable) and are recorded in
   * `cache`. Missing or corrupt objects fail with `StoreCorrupt` and leave the destination untouched.
   */
  async restoreOut(d: OutDigest, absDest: string, cache: StatCache): Promise<void> {
    const dest = resolve(absDest)
    const parent = dirname(dest)
    const name = basename(dest)
    try {
      await mkdir(parent, { recursive: true })
    } catch (e) {
      throw ioError("create", parent, e)
    }
    await removeLeftovers(parent, name)
    const tmp = join(parent, `.${name}.tmp-${randomSuffix()}`)
    let files: ReadonlyArray<FileEntry>
    try {
      if (d.kind === "file") {
        files = [{ path: "", digest: d.digest, size: d.size, executable: d.executable }]
        await this.copyOut(d.digest, d.size, tmp, d.executable, dest)
      } else {
        files = (await this.readManifest(d.digest)).files
        const dirs = new Set(files.map((f) => dirname(join(tmp, f.path))))
        try {
          await mkdir(tmp)
          for (const dir of [...dirs].sort()) await mkdir(dir, { recursive: true })
        } catch (e) {
          throw ioError("create", dest, e)
        }
        await forEachLimit(files, COPY_CONCURRENCY, (f) =>
          this.copyOut(f.digest, f.size, join(tmp, f.path), f.executable, join(dest, f.path)),
        )
      }
      await swapIn(tmp, dest, d.kind === "dir")
    } catch (e) {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined)
      throw e
    }
    // Stat'ed after the rename, which changes a file's ctime on some file systems.
    await forEachLimit(files, 32, async (f) => {
      const path = f.path === "" ? dest : join(dest, f.path)
      const st = await lstat(path, { bigint: true }).catch(() => undefined)
      if (st?.isFile()) cache.set(path, st, f.digest)
    })
  }

  /** The run-cache entry for `fingerprint`; a corrupt one counts as missing and is deleted. */
  getRunCache(fingerprint: string): Promise<RunCacheEntry | undefined> {
    return this.runCache.get(fingerprint)
  }

  /** Record a run-cache entry (after `putOut` of each of its outs), replacing any for the same fingerprint. */
  putRunCache(entry: RunCacheEntry): Promise<void> {
    return this.runCache.put(entry)
  }

  /** Delete the run-cache entry for `fingerprint`, if any. */
  deleteRunCache(fingerprint: string): Promise<void> {
    return this.runCache.delete(fingerprint)
  }

  /** Every valid run-cache entry with its file's mtime (corrupt ones are deleted on the way). */
  listRunCache(): AsyncIterable<RunCacheEntry & { readonly mtimeMs: number }> {
    return this.runCache.list()
  }

  /** The digest of every object in the store. */
  async *listObjects(): AsyncIterable<string> {
    const root = join(this.dir, "objects")
    for (const prefix of await listDir(root)) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue
      for (const rest of await listDir(join(root, prefix))) {
        if (isDigest(prefix + rest)) yield prefix + rest
      }
    }
  }

  /** Whether object `digest` exists and its content still hashes to `digest`. */
  async verifyObject(digest: string): Promise<boolean> {
    const path = this.objectPath(digest)
    let fh: FileHandle
    try {
      fh = await open(path, readFlags)
    } catch (e) {
      if (isNotFound(e) || notAFile(e)) return false
      throw ioError("read", path, e)
    }
    try {
      const hash = createHash("sha256")
      const st = await fh.stat()
      if (!st.isFile()) return false
      const { size } = st
      await readChunks(fh, size, (chunk) => {
        hash.update(chunk)
      })
      return hash.digest("hex") === digest
    } catch (e) {
      throw ioError("read", path, e)
    } finally {
      await fh.close().catch(() => undefined)
    }
  }

  /** Remove object `digest` (nothing if it is not there; a link is removed, never followed). */
  async removeObject(digest: string): Promise<void> {
    const path = this.objectPath(digest)
    await rm(path, { force: true, recursive: true }).catch((e: unknown) => {
      throw ioError("remove", path, e)
    })
  }

  /**
   * Every object an out references: a file's content, or a directory's manifest and its files. A
   * directory whose manifest is missing or corrupt references only the manifest: its files cannot be
   * known, and the out cannot be restored anyway.
   */
  async objectsOf(out: OutDigest): Promise<Set<string>> {
    if (out.kind === "file") return new Set([out.digest])
    try {
      const manifest = await this.readManifest(out.digest)
      return new Set([out.digest, ...manifest.files.map((f) => f.digest)])
    } catch (e) {
      if (e instanceof StoreCorrupt) return new Set([out.digest])
      throw e
    }
  }

  /** Object count and total size. */
  async stats(): Promise<StoreStats> {
    let objects = 0
    let bytes = 0
    for await (const digest of this.listObjects()) {
      const st = await lstat(this.objectPath(digest)).catch(() => undefined)
      if (st === undefined) continue
      objects++
      bytes += st.size
    }
    return { objects, bytes }
  }
}
