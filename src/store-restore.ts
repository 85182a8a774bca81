/**
 * Putting outs back from the store. We run as root, which writes through 0444, so objects are never
 * hard-linked into the workspace: a restore is a copy, and a stage writing its out cannot damage the store.
 *
 * Restores copy by streaming (read the object once, hash and write each chunk) rather than by
 * `copyFile(COPYFILE_FICLONE)` followed by a hashing pass: a reflink is free only on btrfs/XFS, and
 * everywhere else that falls back to a full copy and then a second read of every byte to verify it.
 * Streaming always costs one read and one write, and the bytes hashed are the bytes written.
 */
import { lstat, mkdir, open, rm } from "node:fs/promises"
import { basename, dirname, join, resolve } from "node:path"
import { StoreCorrupt } from "./errors.js"
import {
  copyHashing,
  forEachLimit,
  ioError,
  isNotFound,
  randomSuffix,
  removeLeftovers,
  swapIn,
} from "./fs-util.js"
import type { FileEntry } from "./hash.js"
import type { OutDigest } from "./run-cache.js"
import type { StatCache } from "./stat-cache.js"
import { notAFile, type Objects, readFlags } from "./store-objects.js"
import { COPY_CONCURRENCY } from "./store-write.js"

/**
 * Copy object `digest` to the new file `dest` with the given mode, verifying its digest on the way; write
 * errors name `reportAs` (the out, not its temp name). A missing or corrupt object fails with
 * `StoreCorrupt`; a corrupt one is removed from the store. So is an object that is not a regular file (a
 * symbolic link is never followed out of the store).
 */
const copyOut = async (
  objects: Objects,
  digest: string,
  size: number,
  dest: string,
  executable: boolean,
  reportAs: string,
): Promise<void> => {
  const path = objects.path(digest)
  const from = await open(path, readFlags).catch(async (e: unknown) => {
    if (isNotFound(e)) throw new StoreCorrupt({ digest, path })
    if (!notAFile(e)) throw ioError("read", path, e)
    await objects.remove(digest)
    throw new StoreCorrupt({ digest, path })
  })
  try {
    if (!(await from.stat()).isFile()) {
      await objects.remove(digest)
      throw new StoreCorrupt({ digest, path })
    }
    const to = await open(dest, "wx", 0o600).catch((e: unknown) => {
      throw ioError("write", reportAs, e)
    })
    try {
      if ((await copyHashing(from, path, to, reportAs, size)) !== digest) {
        await objects.remove(digest)
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
 * Put the out `d` back at `absDest` from `objects`: build it beside the destination under a hidden temp
 * name, verifying every file against its digest, then swap it in for whatever is there (a symlink there is
 * replaced, never written through). Files get mode 0644 (0755 if executable) and are recorded in `cache`.
 * Missing or corrupt objects fail with `StoreCorrupt` and leave the destination untouched.
 */
export const restoreOut = async (
  objects: Objects,
  d: OutDigest,
  absDest: string,
  cache: StatCache,
): Promise<void> => {
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
      await copyOut(objects, d.digest, d.size, tmp, d.executable, dest)
    } else {
      files = (await objects.readManifest(d.digest)).files
      const dirs = new Set(files.map((f) => dirname(join(tmp, f.path))))
      try {
        await mkdir(tmp)
        for (const dir of [...dirs].sort()) await mkdir(dir, { recursive: true })
      } catch (e) {
        throw ioError("create", dest, e)
      }
      await forEachLimit(files, COPY_CONCURRENCY, (f) =>
        copyOut(objects, f.digest, f.size, join(tmp, f.path), f.executable, join(dest, f.path)),
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
