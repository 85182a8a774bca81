/**
 * The store's objects, `objects/<2 hex>/<62 hex>`: file contents and directory manifests named by their
 * SHA-256, mode 0444. This module names them and reads them back: checking one is there, reading a manifest,
 * re-hashing, listing, removing. Objects are written by `store-write.ts` and copied out by `store-restore.ts`.
 *
 * An object is never trusted to be what its name says: whatever reads its bytes re-hashes them, opens it with
 * `O_NOFOLLOW` (a symbolic link planted in the store is never followed out of it), and removes one that is
 * wrong so that the next run rebuilds it.
 */
import { createHash } from "node:crypto"
import { constants } from "node:fs"
import { type FileHandle, lstat, open, readFile, rm } from "node:fs/promises"
import { join } from "node:path"
import { StoreCorrupt } from "./errors.js"
import { errorCode, ioError, isNotFound, listDir, readChunks } from "./fs-util.js"
import { type DirDigest, isDigest, parseManifest, sha256Bytes } from "./hash.js"
import type { OutDigest } from "./run-cache.js"

/** How objects are opened for reading: never through a link, never blocking on a FIFO planted there. */
export const readFlags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK

/** An object path holding a symbolic link (refused by O_NOFOLLOW) or a directory: not an object. */
export const notAFile = (e: unknown): boolean => {
  const code = errorCode(e)
  return code === "ELOOP" || code === "EISDIR" || code === "ERR_FS_EISDIR"
}

/** Object count and total bytes, for gc reports. */
export interface StoreStats {
  readonly objects: number
  readonly bytes: number
}

/** The `objects/` folder of a store. */
export class Objects {
  constructor(
    /** the `objects/` folder */
    readonly root: string,
  ) {}

  /** Where the object with `digest` lives (whether or not it exists). */
  path(digest: string): string {
    if (!isDigest(digest)) throw new TypeError(`not a SHA-256 digest: ${JSON.stringify(digest)}`)
    return join(this.root, digest.slice(0, 2), digest.slice(2))
  }

  /** Whether the object `digest` is there (its content is not checked). */
  async has(digest: string): Promise<boolean> {
    const path = this.path(digest)
    try {
      return (await lstat(path)).isFile()
    } catch (e) {
      if (isNotFound(e)) return false
      throw ioError("stat", path, e)
    }
  }

  /**
   * Whether a complete-looking object is already there. One of the wrong size (a torn write after a
   * power loss) is removed so it gets rewritten.
   */
  async present(digest: string, size: number): Promise<boolean> {
    const path = this.path(digest)
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
   * The manifest object `digest` as a directory digest. A missing object, or one whose bytes do not hash
   * to `digest` (it is removed), or one that is not a manifest, fails with `StoreCorrupt`.
   */
  async readManifest(digest: string): Promise<DirDigest> {
    const path = this.path(digest)
    let bytes: Buffer
    try {
      bytes = await readFile(path, { flag: readFlags })
    } catch (e) {
      if (isNotFound(e)) throw new StoreCorrupt({ digest, path })
      if (notAFile(e)) {
        await this.remove(digest)
        throw new StoreCorrupt({ digest, path })
      }
      throw ioError("read", path, e)
    }
    if (sha256Bytes(bytes) !== digest) {
      await this.remove(digest)
      throw new StoreCorrupt({ digest, path })
    }
    const files = parseManifest(bytes)
    if (files === undefined) throw new StoreCorrupt({ digest, path })
    return { kind: "dir", digest, size: files.reduce((total, f) => total + f.size, 0), files }
  }

  /** The digest of every object. */
  async *list(): AsyncIterable<string> {
    for (const prefix of await listDir(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue
      for (const rest of await listDir(join(this.root, prefix))) {
        if (isDigest(prefix + rest)) yield prefix + rest
      }
    }
  }

  /** Whether object `digest` exists and its content still hashes to `digest`. */
  async verify(digest: string): Promise<boolean> {
    const path = this.path(digest)
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
  async remove(digest: string): Promise<void> {
    const path = this.path(digest)
    await rm(path, { force: true, recursive: true }).catch((e: unknown) => {
      throw ioError("remove", path, e)
    })
  }

  /**
   * Every object an out references: a file's content, or a directory's manifest and its files. A
   * directory whose manifest is missing or corrupt references only the manifest: its files cannot be
   * known, and the out cannot be restored anyway.
   */
  async of(out: OutDigest): Promise<Set<string>> {
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
    for await (const digest of this.list()) {
      const st = await lstat(this.path(digest)).catch(() => undefined)
      if (st === undefined) continue
      objects++
      bytes += st.size
    }
    return { objects, bytes }
  }
}
