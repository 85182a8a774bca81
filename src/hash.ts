/**
 * Content digests of files and directories: lowercase hex SHA-256, streamed (bench/hash.mjs has the
 * throughput figures behind choosing node:crypto's SHA-256). A directory's digest is the SHA-256 of its
 * manifest, the canonical JSON listing of its files, which is exactly the object the store saves for it:
 * the manifest's object name is the directory's digest.
 */
import { createHash, hash } from "node:crypto"
import {
  type BigIntStats,
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
} from "node:fs"
import { type FileHandle, lstat, open, readdir, stat } from "node:fs/promises"
import { join, resolve } from "node:path"
import { StoreIOError } from "./errors.js"
import { errorCode, forEachLimit, ioError, isNotFound, readChunks } from "./fs-util.js"
import { type StatCache, statKey } from "./stat-cache.js"

/** One file inside a directory out or dep. */
export type FileEntry = {
  /** POSIX path relative to the directory, no `.` or `..` segments */
  readonly path: string
  readonly digest: string
  readonly size: number
  readonly executable: boolean
}

/** The content digest of a file or a directory (a directory's file list sorted by path, byte order). */
export type PathDigest =
  | { readonly kind: "file"; readonly digest: string; readonly size: number; readonly executable: boolean }
  | {
      readonly kind: "dir"
      readonly digest: string
      /** total size of its files */
      readonly size: number
      readonly files: ReadonlyArray<FileEntry>
    }

/** The directory variant of `PathDigest`. */
export type DirDigest = Extract<PathDigest, { kind: "dir" }>

/** Files hashed at once inside one directory. */
const HASH_CONCURRENCY = 8
/** Entries stat'ed at once inside one directory. */
const STAT_CONCURRENCY = 32

/**
 * A digest is only cached when the file's mtime was at least this much older than the moment we looked
 * at it. Otherwise a write landing in the same timestamp tick right after our stat (same size, same
 * mtime and ctime) would go unnoticed: git's "racily clean" problem. Two seconds covers file systems
 * with 1 s and 2 s timestamps; the cost is that a file written just before it is hashed gets hashed again
 * the next time it is needed, once.
 */
const RACY_WINDOW_NS = 2_000_000_000n

/** True for a lowercase hex SHA-256. */
export const isDigest = (s: unknown): s is string => typeof s === "string" && /^[0-9a-f]{64}$/.test(s)

/**
 * SHA-256 of bytes or of a string's UTF-8 encoding. Node's one-shot `hash` (Node 20.12+): a third of
 * `createHash`'s cost on the small inputs hashed per stage, where the hasher object was most of it.
 */
export const sha256Bytes = (data: Uint8Array | string): string => hash("sha256", data, "hex")

const hashHandle = async (fh: FileHandle, sizeHint: number): Promise<string> => {
  const hash = createHash("sha256")
  await readChunks(fh, sizeHint, (chunk) => {
    hash.update(chunk)
  })
  return hash.digest("hex")
}

/** SHA-256 of a file's content, streamed; fails with `StoreIOError`. */
export const sha256File = async (abs: string): Promise<string> => {
  let fh: FileHandle
  try {
    fh = await open(abs, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (e) {
    throw ioError("read", abs, e)
  }
  try {
    const st = await fh.stat()
    return await hashHandle(fh, st.size)
  } catch (e) {
    throw ioError("read", abs, e)
  } finally {
    await fh.close().catch(() => undefined)
  }
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b))

/**
 * The canonical manifest of a directory: `{"kind":"dir","files":[{"path","digest","size","executable"}]}`
 * with the keys in that order and `files` as given (callers pass them sorted). These bytes are both what
 * the directory's digest is taken of and the manifest object the store keeps.
 */
export const manifestBytes = (files: ReadonlyArray<FileEntry>): Buffer =>
  Buffer.from(
    JSON.stringify({
      kind: "dir",
      files: files.map((f) => ({ path: f.path, digest: f.digest, size: f.size, executable: f.executable })),
    }),
  )

/** The digest of a directory holding `files` (in any order). */
export const dirDigestOf = (files: ReadonlyArray<FileEntry>): DirDigest => {
  const sorted = [...files].sort((a, b) => byteOrder(a.path, b.path))
  return {
    kind: "dir",
    digest: sha256Bytes(manifestBytes(sorted)),
    size: sorted.reduce((total, f) => total + f.size, 0),
    files: sorted,
  }
}

const isExecutable = (st: BigIntStats): boolean => (Number(st.mode) & 0o111) !== 0

const symlinkError = (abs: string): StoreIOError =>
  new StoreIOError({
    op: "hash",
    path: abs,
    message: `outs may not contain symbolic links, but ${abs} is one; write a copy of the file it points to instead`,
  })

const unsupportedError = (abs: string, st: BigIntStats): StoreIOError => {
  const what = st.isFIFO()
    ? "a named pipe"
    : st.isSocket()
      ? "a socket"
      : st.isCharacterDevice() || st.isBlockDevice()
        ? "a device"
        : "not a regular file or directory"
  return new StoreIOError({
    op: "hash",
    path: abs,
    message: `cannot hash ${abs}: it is ${what}; only regular files and directories can be deps and outs`,
  })
}

interface Walk {
  readonly follow: boolean
  readonly cache: StatCache
  /** given the bytes of each small file hashed (see `digestPathSync`) */
  readonly onBytes: ((abs: string, bytes: Buffer) => void) | undefined
  /** wall clock (ns) before the first stat: see RACY_WINDOW_NS */
  readonly startedNs: bigint
}

/** Files up to this size are hashed with synchronous calls: cheaper than the thread pool's round trips. */
const SMALL_FILE_BYTES = 256n * 1024n

/**
 * `digestFile` for a small file; undefined if it changed while being read (the caller then streams it).
 * `before` is the stat of `abs` taken just before: the file is read from an open descriptor and stat'ed
 * again, and the two must agree (same inode, size and times), so the digest describes what `before` says.
 */
const digestSmallFile = (
  abs: string,
  before: BigIntStats,
  walk: Walk,
): { digest: string; size: number; executable: boolean } | undefined => {
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (walk.follow ? 0 : constants.O_NOFOLLOW)
  let fd: number
  try {
    fd = openSync(abs, flags)
  } catch (e) {
    if (!walk.follow && errorCode(e) === "ELOOP") throw symlinkError(abs)
    throw ioError("read", abs, e)
  }
  try {
    const bytes = readSized(fd, Number(before.size))
    const after = fstatSync(fd, { bigint: true })
    if (bytes === undefined || !after.isFile() || statKey(before) !== statKey(after)) return undefined
    const digest = sha256Bytes(bytes)
    walk.onBytes?.(abs, bytes)
    if (walk.startedNs - before.mtimeNs >= RACY_WINDOW_NS) walk.cache.set(abs, before, digest)
    else walk.cache.saw(abs, before, digest)
    return { digest, size: Number(before.size), executable: isExecutable(before) }
  } catch (e) {
    throw ioError("read", abs, e)
  } finally {
    closeSync(fd)
  }
}

/**
 * The `size` bytes of an open file, or undefined if it does not hold exactly that many. Read into a buffer of
 * the known size rather than with `readFileSync`, which would stat the descriptor again to learn it. A file
 * that reports no size (some special files do, whatever they hold) is read to its end.
 */
const readSized = (fd: number, size: number): Buffer | undefined => {
  if (size === 0) {
    const all = readFileSync(fd)
    return all.length === 0 ? all : undefined
  }
  const bytes = Buffer.allocUnsafe(size)
  let n = 0
  while (n < size) {
    const got = readSync(fd, bytes, n, size - n, null)
    if (got === 0) return undefined
    n += got
  }
  return bytes // (had it grown meanwhile, the stat after reading shows it)
}

/** Hash one regular file, using and refreshing the stat cache. */
const digestFile = async (
  abs: string,
  st: BigIntStats,
  walk: Walk,
): Promise<{ digest: string; size: number; executable: boolean }> => {
  const hit = walk.cache.get(abs, st)
  if (hit !== undefined) return { digest: hit, size: Number(st.size), executable: isExecutable(st) }
  if (st.size <= SMALL_FILE_BYTES) {
    const small = digestSmallFile(abs, st, walk)
    if (small !== undefined) return small
  }
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (walk.follow ? 0 : constants.O_NOFOLLOW)
  // The stat that goes into the cache is taken on the open descriptor before and after reading, so it
  // describes the very bytes hashed; if they differ the file changed under us and we read it again.
  for (let attempt = 0; attempt < 3; attempt++) {
    let fh: FileHandle
    try {
      fh = await open(abs, flags)
    } catch (e) {
      if (!walk.follow && errorCode(e) === "ELOOP") throw symlinkError(abs)
      throw ioError("read", abs, e)
    }
    try {
      const before = await fh.stat({ bigint: true })
      if (!before.isFile()) throw unsupportedError(abs, before)
      const digest = await hashHandle(fh, Number(before.size))
      const after = await fh.stat({ bigint: true })
      if (statKey(before) === statKey(after)) {
        if (walk.startedNs - before.mtimeNs >= RACY_WINDOW_NS) walk.cache.set(abs, before, digest)
        else walk.cache.saw(abs, before, digest)
        return { digest, size: Number(before.size), executable: isExecutable(before) }
      }
    } catch (e) {
      throw ioError("read", abs, e)
    } finally {
      await fh.close().catch(() => undefined)
    }
  }
  throw new StoreIOError({
    op: "hash",
    path: abs,
    message: `${abs} kept changing while it was being hashed; is something still writing it?`,
  })
}

interface Found {
  readonly rel: string
  readonly abs: string
  readonly st: BigIntStats
}

/** Every regular file under `dir`, recursively; empty directories leave no trace. */
const listFiles = async (
  dir: string,
  rel: string,
  walk: Walk,
  ancestors: ReadonlySet<string>,
  found: Array<Found>,
): Promise<void> => {
  let names: Array<string>
  try {
    names = await readdir(dir)
  } catch (e) {
    throw ioError("read directory", dir, e)
  }
  const entries: Array<Found> = []
  await forEachLimit(names, STAT_CONCURRENCY, async (name) => {
    const abs = join(dir, name)
    try {
      entries.push({
        rel: rel === "" ? name : `${rel}/${name}`,
        abs,
        st: await (walk.follow ? stat : lstat)(abs, { bigint: true }),
      })
    } catch (e) {
      throw ioError("stat", abs, e)
    }
  })
  for (const entry of entries) {
    const { abs, st } = entry
    if (st.isSymbolicLink()) throw symlinkError(abs)
    if (st.isFile()) found.push(entry)
    else if (st.isDirectory()) {
      // Only reachable through followed links: a link to an ancestor would recurse forever.
      const id = `${st.dev}:${st.ino}`
      if (ancestors.has(id)) {
        throw new StoreIOError({
          op: "hash",
          path: abs,
          message: `cannot hash ${abs}: it is a symbolic link loop (it leads back to a directory that contains it)`,
        })
      }
      await listFiles(abs, entry.rel, walk, new Set([...ancestors, id]), found)
    } else throw unsupportedError(abs, st)
  }
}

/** How to hash a path. */
export interface DigestOptions {
  /** follow symbolic links (deps), or refuse them (outs) */
  readonly followSymlinks: boolean
  /**
   * Given the bytes of each small file read for its digest (not of one whose digest came from the stat
   * cache): what the store saves of an out it has just hashed, without reading it again.
   */
  readonly onBytes?: (abs: string, bytes: Buffer) => void
}

/** `digestPathSync`'s answer for a path that needs the asynchronous walk: a directory, or a large file. */
export const NEEDS_ASYNC: unique symbol = Symbol("needs async")

const walkOf = (cache: StatCache, opts: DigestOptions, startedMs = Date.now()): Walk => ({
  follow: opts.followSymlinks,
  cache,
  onBytes: opts.onBytes,
  startedNs: BigInt(startedMs) * 1_000_000n,
})

/**
 * `digestPath` without leaving the thread, for what needs no more than a few system calls: nothing there, a
 * file the stat cache knows, or a small file. Anything else gives `NEEDS_ASYNC`. Most digests of a run are
 * these, and a thread-pool round trip costs more than the whole of one of them.
 */
export const digestPathSync = (
  path: string,
  cache: StatCache,
  opts: DigestOptions,
): PathDigest | undefined | typeof NEEDS_ASYNC => {
  const abs = resolve(path)
  const startedMs = Date.now()
  let st: BigIntStats | undefined
  try {
    st = (opts.followSymlinks ? statSync : lstatSync)(abs, { bigint: true, throwIfNoEntry: false })
  } catch (e) {
    if (isNotFound(e)) return undefined
    throw ioError("stat", abs, e)
  }
  if (st === undefined) return undefined
  if (st.isSymbolicLink()) throw symlinkError(abs)
  if (!st.isFile()) {
    if (!st.isDirectory()) throw unsupportedError(abs, st)
    return NEEDS_ASYNC
  }
  const hit = cache.get(abs, st)
  if (hit !== undefined)
    return { kind: "file", digest: hit, size: Number(st.size), executable: isExecutable(st) }
  if (st.size > SMALL_FILE_BYTES) return NEEDS_ASYNC
  const small = digestSmallFile(abs, st, walkOf(cache, opts, startedMs))
  return small === undefined ? NEEDS_ASYNC : { kind: "file", ...small }
}

/**
 * The digest of the file or directory at `path`, or `undefined` if nothing is there. Outs are hashed
 * with `followSymlinks: false`: a symbolic link at or inside the path fails with `StoreIOError`, since
 * the store could not restore it faithfully. Deps follow links.
 */
export const digestPath = async (
  path: string,
  cache: StatCache,
  opts: DigestOptions,
): Promise<PathDigest | undefined> => {
  const quick = digestPathSync(path, cache, opts)
  if (quick !== NEEDS_ASYNC) return quick
  const walk = walkOf(cache, opts)
  // Normalised, so the stat cache sees one key per file whatever spelling the caller used.
  const abs = resolve(path)
  let st: BigIntStats
  try {
    st = (walk.follow ? statSync : lstatSync)(abs, { bigint: true })
  } catch (e) {
    if (isNotFound(e)) return undefined
    throw ioError("stat", abs, e)
  }
  if (st.isSymbolicLink()) throw symlinkError(abs)
  if (st.isFile()) return { kind: "file", ...(await digestFile(abs, st, walk)) }
  if (!st.isDirectory()) throw unsupportedError(abs, st)
  const found: Array<Found> = []
  await listFiles(abs, "", walk, new Set([`${st.dev}:${st.ino}`]), found)
  const files: Array<FileEntry> = new Array(found.length)
  await forEachLimit(found, HASH_CONCURRENCY, async (f, i) => {
    files[i] = { path: f.rel, ...(await digestFile(f.abs, f.st, walk)) }
  })
  return dirDigestOf(files)
}

const isSafeRelPath = (p: string): boolean =>
  p !== "" && !p.includes("\0") && p.split("/").every((s) => s !== "" && s !== "." && s !== "..")

/** The file list of a manifest if it is one in canonical form (as `manifestBytes` writes it), else undefined. */
export const parseManifest = (bytes: Buffer): Array<FileEntry> | undefined => {
  let v: unknown
  try {
    v = JSON.parse(bytes.toString("utf8"))
  } catch {
    return undefined
  }
  if (typeof v !== "object" || v === null || !("kind" in v) || v.kind !== "dir") return undefined
  if (!("files" in v) || !Array.isArray(v.files)) return undefined
  const files: Array<FileEntry> = []
  const paths = new Set<string>()
  for (const f of v.files as Array<unknown>) {
    if (typeof f !== "object" || f === null) return undefined
    const { path, digest, size, executable } = f as Record<string, unknown>
    if (typeof path !== "string" || !isSafeRelPath(path) || paths.has(path) || !isDigest(digest))
      return undefined
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) return undefined
    if (typeof executable !== "boolean") return undefined
    paths.add(path)
    files.push({ path, digest, size, executable })
  }
  // A file may not also be a directory of another ("a" and "a/b").
  for (const p of paths) {
    for (let i = p.indexOf("/"); i !== -1; i = p.indexOf("/", i + 1))
      if (paths.has(p.slice(0, i))) return undefined
  }
  // Canonical bytes only: then the manifest's name is the directory's digest, nothing else.
  return manifestBytes(files).equals(bytes) ? files : undefined
}
