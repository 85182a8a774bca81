/**
 * Saving outs into the store: each file becomes an object named by its SHA-256 (a folder out also gets a
 * manifest object listing its files). An object is written under the store's temp folder, made read-only
 * and renamed into place, so it is whole or absent; one already there is not written again. The bytes are
 * hashed as they are copied: an out that changed since it was digested fails instead of being stored under
 * the wrong name.
 */
import { closeSync, lstatSync, openSync, readFileSync, rmSync } from "node:fs"
import { mkdir, open, rename, rm } from "node:fs/promises"
import { dirname, join } from "node:path"
import { StoreIOError } from "./errors.js"
import { copyHashing, forEachLimit, ioError, renameInto, writeFully } from "./fs-util.js"
import { manifestBytes, type PathDigest, sha256Bytes } from "./hash.js"
import { type Objects, readFlags } from "./store-objects.js"
import type { TempDir } from "./store-temp.js"

/** Files copied at once when saving a directory. */
export const COPY_CONCURRENCY = 8
/** Files up to this size are saved and hashed with synchronous calls (see `putSmallFile`). */
export const SMALL_FILE = 256 * 1024

const changed = (abs: string): StoreIOError =>
  new StoreIOError({
    op: "save",
    path: abs,
    message: `${abs} changed while it was being saved to the store; is something still writing it?`,
  })

/** Writes objects into `objects` through the temp folder `temp`. */
export class ObjectWriter {
  /** `objects/<2 hex>/` folders known to exist: each is made once per process, not checked per object */
  private readonly made = new Set<string>()

  constructor(
    private readonly objects: Objects,
    private readonly temp: TempDir,
  ) {}

  /** Rename a finished, read-only temp file to its object path. */
  private async publish(tmp: string, digest: string): Promise<void> {
    const dest = this.objects.path(digest)
    try {
      await mkdir(dirname(dest), { recursive: true })
      // Renaming over an identical object a concurrent writer just put there is harmless.
      await rename(tmp, dest)
    } catch (e) {
      throw ioError("write", dest, e)
    }
  }

  /**
   * `putFile` for a small file, synchronously: most outs are small, and for them the thread-pool round trips
   * of the streaming path (open, read, write, chmod, close, rename: ~10 of them) cost more than the copy.
   */
  private putSmallFile(abs: string, digest: string, size: number): void {
    if (this.isPresent(digest, size)) return
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
    if (sha256Bytes(bytes) !== digest) throw changed(abs)
    this.writeSmall(digest, bytes)
  }

  /** Whether the object `digest` of `size` bytes is there (a wrong thing under its name is removed). */
  private isPresent(digest: string, size: number): boolean {
    const dest = this.objects.path(digest)
    try {
      const st = lstatSync(dest, { throwIfNoEntry: false })
      if (st?.isFile() && st.size === size) return true
      if (st) rmSync(dest, { recursive: true, force: true })
      return false
    } catch (e) {
      throw ioError("stat", dest, e)
    }
  }

  private writeSmall(digest: string, bytes: Buffer): void {
    const dest = this.objects.path(digest)
    let tmp: string
    try {
      tmp = this.temp.writeSync(bytes, 0o444)
    } catch (e) {
      throw ioError("write", dest, e)
    }
    try {
      renameInto(tmp, dest, this.made)
    } catch (e) {
      rmSync(tmp, { force: true })
      throw ioError("write", dest, e)
    }
  }

  /**
   * Save the bytes of a small file, read when it was hashed to `digest`, as an object: what `putOut` does for
   * it, without reading the file again. The caller vouches that `bytes` are what was hashed.
   */
  putSmallBytes(digest: string, bytes: Buffer): void {
    if (bytes.length > SMALL_FILE) throw new TypeError(`putSmallBytes: ${bytes.length} bytes is not small`)
    if (!this.isPresent(digest, bytes.length)) this.writeSmall(digest, bytes)
  }

  /** Save `bytes`, whose SHA-256 is `digest`, as an object. */
  private async putBytes(digest: string, bytes: Buffer): Promise<void> {
    if (await this.objects.present(digest, bytes.length)) return
    const tmp = await this.temp.path()
    try {
      const fh = await open(tmp, "wx", 0o444).catch((e: unknown) => {
        throw ioError("write", this.objects.path(digest), e)
      })
      try {
        await writeFully(fh, bytes).catch((e: unknown) => {
          throw ioError("write", this.objects.path(digest), e)
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
  private async putLargeFile(abs: string, digest: string, size: number): Promise<void> {
    if (await this.objects.present(digest, size)) return
    const dest = this.objects.path(digest)
    const tmp = await this.temp.path()
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
          if (actual !== digest) throw changed(abs)
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
   * Fails with `StoreIOError` if the content no longer matches `d`. A small file is saved before this returns
   * (no promise, so a caller on a hot path need not wait for a turn of the event loop); anything else gives a
   * promise.
   */
  putOut(abs: string, d: PathDigest): void | Promise<void> {
    if (d.kind === "file") return this.putFile(abs, d.digest, d.size)
    return this.putDir(abs, d)
  }

  private putFile(abs: string, digest: string, size: number): void | Promise<void> {
    return size <= SMALL_FILE ? this.putSmallFile(abs, digest, size) : this.putLargeFile(abs, digest, size)
  }

  private async putDir(abs: string, d: PathDigest & { readonly kind: "dir" }): Promise<void> {
    await forEachLimit(d.files, COPY_CONCURRENCY, async (f) =>
      this.putFile(join(abs, f.path), f.digest, f.size),
    )
    const manifest = manifestBytes(d.files)
    if (sha256Bytes(manifest) !== d.digest) {
      throw new TypeError(`putOut(${abs}): the file list does not match the directory digest ${d.digest}`)
    }
    await this.putBytes(d.digest, manifest)
  }
}
