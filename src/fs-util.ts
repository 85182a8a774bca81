/**
 * File-system helpers shared by the hasher, the stat cache, the run cache and the store: readable
 * `StoreIOError`s from Node's errno errors, bounded concurrency, a double-buffered chunk reader and
 * hashing copy, and the atomic swap that puts a restored out in place.
 */
import { createHash, randomBytes } from "node:crypto"
import { mkdirSync, renameSync } from "node:fs"
import { type FileHandle, lstat, open, readdir, rename, rm } from "node:fs/promises"
import { basename, dirname, join } from "node:path"
import { StoreIOError } from "./errors.js"

/** The errno code of a Node system error, if it is one. */
export const errorCode = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined

/** True for the errors that mean "there is nothing at this path". */
export const isNotFound = (e: unknown): boolean => {
  const code = errorCode(e)
  return code === "ENOENT" || code === "ENOTDIR"
}

/**
 * Turn a failed file-system call into a `StoreIOError` that reads well on its own. Errors that already
 * are `StoreIOError`s (or other tagged errors) pass through untouched.
 */
export const ioError = (op: string, path: string, e: unknown): Error => {
  if (e instanceof StoreIOError || (e instanceof Error && "_tag" in e)) return e
  const code = errorCode(e)
  const detail = e instanceof Error ? e.message : String(e)
  const message = ((): string => {
    switch (code) {
      case "ENOSPC":
        return `no space left on device while writing ${path}`
      case "EDQUOT":
        return `disk quota exceeded while writing ${path}`
      case "EACCES":
      case "EPERM":
        return `permission denied: cannot ${op} ${path}`
      case "EROFS":
        return `read-only file system: cannot ${op} ${path}`
      case "ENOENT":
        return `no such file or directory: ${path}`
      case "ENOTDIR":
        return `a component of the path is not a directory: ${path}`
      case "EISDIR":
        return `is a directory: ${path}`
      case "ELOOP":
        return `too many levels of symbolic links (or a symbolic link where none is allowed): ${path}`
      case "EMFILE":
      case "ENFILE":
        return `too many open files while trying to ${op} ${path}`
      case "EIO":
        return `input/output error (failing disk?) while trying to ${op} ${path}`
      default:
        return `cannot ${op} ${path}: ${detail}`
    }
  })()
  return new StoreIOError({ op, path, message })
}

/** Run `fn` on `items` with at most `limit` calls in flight; rejects with the first failure. */
export const forEachLimit = async <A>(
  items: ReadonlyArray<A>,
  limit: number,
  fn: (item: A, index: number) => Promise<void>,
): Promise<void> => {
  let next = 0
  let failed = false
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const index = next++
      try {
        await fn(items[index] as A, index)
      } catch (e) {
        failed = true
        throw e
      }
    }
  }
  const workers = Array.from({ length: Math.min(limit, items.length) }, worker)
  // allSettled first so no worker is still touching files when the caller starts cleaning up.
  const results = await Promise.allSettled(workers)
  for (const r of results) if (r.status === "rejected") throw r.reason
}

/** A short random suffix for temp names. */
export const randomSuffix = (): string => randomBytes(6).toString("hex")

const CHUNK = 1024 * 1024

/**
 * Read an open file from its current position to the end, handing each chunk to `onChunk`. Two buffers:
 * the next read is in flight while `onChunk` hashes (and writes) the current one, which is what makes
 * node:crypto keep up with `openssl dgst` (see bench/hash.mjs). A chunk is only valid until `onChunk`'s
 * promise settles. `sizeHint` keeps small files from allocating whole megabytes.
 */
export const readChunks = async (
  fh: FileHandle,
  sizeHint: number,
  onChunk: (chunk: Buffer) => void | Promise<void>,
): Promise<void> => {
  const length = Math.max(1, Math.min(CHUNK, sizeHint + 1))
  let current = Buffer.allocUnsafe(length)
  let spare = Buffer.allocUnsafe(length)
  const readInto = (buf: Buffer) => {
    const p = fh.read(buf, 0, length, null)
    // Mark it handled now: it may reject while onChunk is still running, before anyone awaits it.
    p.catch(() => undefined)
    return p
  }
  let pending = readInto(current)
  for (;;) {
    const { bytesRead } = await pending
    if (bytesRead === 0) return
    const chunk = current.subarray(0, bytesRead)
    ;[current, spare] = [spare, current]
    pending = readInto(current)
    try {
      await onChunk(chunk)
    } catch (e) {
      // Do not leave a read writing into a buffer after we return.
      await pending.catch(() => undefined)
      throw e
    }
  }
}

/** Write all of `chunk` at the handle's position. */
export const writeFully = async (fh: FileHandle, chunk: Buffer): Promise<void> => {
  let offset = 0
  while (offset < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, offset, chunk.length - offset, null)
    offset += bytesWritten
  }
}

/**
 * Copy the open `from` into the open `to`, returning the SHA-256 of the bytes copied. Read errors are
 * reported against `fromPath`, write errors against `toPath`.
 */
export const copyHashing = async (
  from: FileHandle,
  fromPath: string,
  to: FileHandle,
  toPath: string,
  sizeHint: number,
): Promise<string> => {
  const hash = createHash("sha256")
  let writing = false
  try {
    await readChunks(from, sizeHint, async (chunk) => {
      hash.update(chunk)
      writing = true
      await writeFully(to, chunk)
      writing = false
    })
  } catch (e) {
    throw writing ? ioError("write", toPath, e) : ioError("read", fromPath, e)
  }
  return hash.digest("hex")
}

/** The names in a directory; none if it does not exist. */
export const listDir = async (dir: string): Promise<Array<string>> => {
  try {
    return await readdir(dir)
  } catch (e) {
    if (isNotFound(e)) return []
    throw ioError("read directory", dir, e)
  }
}

/** Create the new file `tmp` holding `text`; write errors are reported against `reportAs`. */
export const writeFileExclusive = async (tmp: string, reportAs: string, text: string): Promise<void> => {
  const fh = await open(tmp, "wx", 0o644)
  try {
    await writeFully(fh, Buffer.from(text))
  } catch (e) {
    throw ioError("write", reportAs, e)
  } finally {
    await fh.close()
  }
}

/**
 * Remove `.<name>.tmp-*` and `.<name>.old-*` beside an out: what a killed restore left. Only one run
 * works in a project at a time (the project lock), so none of them is still being written.
 */
export const removeLeftovers = async (parent: string, name: string): Promise<void> => {
  const prefixes = [`.${name}.tmp-`, `.${name}.old-`]
  for (const entry of await listDir(parent)) {
    if (prefixes.some((p) => entry.startsWith(p) && /^[0-9a-f]{12}$/.test(entry.slice(p.length)))) {
      await rm(join(parent, entry), { recursive: true, force: true }).catch(() => undefined)
    }
  }
}

/**
 * Put the finished `tmp` at `dest`. A file over a file or symlink is one atomic rename. Anything else
 * (a directory at either end) cannot be renamed over, so the old one is first renamed aside, then removed
 * once the new one is in place; `rm` unlinks a symlink, it never follows it.
 */
export const swapIn = async (tmp: string, dest: string, tmpIsDir: boolean): Promise<void> => {
  let destIsDir: boolean | undefined
  try {
    destIsDir = (await lstat(dest)).isDirectory()
  } catch (e) {
    if (!isNotFound(e)) throw ioError("stat", dest, e)
  }
  if (destIsDir === undefined || (!tmpIsDir && !destIsDir)) {
    await rename(tmp, dest).catch((e: unknown) => {
      throw ioError("write", dest, e)
    })
    return
  }
  const aside = join(dirname(dest), `.${basename(dest)}.old-${randomSuffix()}`)
  await rename(dest, aside).catch((e: unknown) => {
    throw ioError("replace", dest, e)
  })
  try {
    await rename(tmp, dest)
  } catch (e) {
    await rename(aside, dest).catch(() => undefined)
    throw ioError("write", dest, e)
  }
  await rm(aside, { recursive: true, force: true }).catch((e: unknown) => {
    throw ioError("remove", aside, e)
  })
}

/** Rename `from` to `to`, creating `to`'s folder when it is missing; `made` remembers the folders known to exist. */
export const renameInto = (from: string, to: string, made: Set<string>): void => {
  const dir = dirname(to)
  if (!made.has(dir)) {
    mkdirSync(dir, { recursive: true })
    made.add(dir)
  }
  try {
    renameSync(from, to)
  } catch (e) {
    if (errorCode(e) !== "ENOENT") throw e
    // Removed since (by hand, or by a gc of another project sharing the store): make it again.
    mkdirSync(dir, { recursive: true })
    renameSync(from, to)
  }
}
