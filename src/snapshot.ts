/**
 * The no-op snapshot: after a run that left every stage of a pipeline fresh, the stat of every file the
 * pipeline reads or writes (its definition, its lock file, every dep and out, folders included). A later
 * `pipeline run` whose files all still have those stats has nothing to do, and says so without loading the
 * pipeline, the store or the executor (`fast-run.ts`): the cost of a fully cached rerun becomes start-up plus
 * one stat per file, like the floor for any Node tool.
 *
 * Why it is safe: a file whose size, mtime, ctime and inode are unchanged is taken to be unchanged (the same
 * rule as the stat cache and DVC's state db); a file written within two seconds of the snapshot could change
 * again within one timestamp tick, so its content digest is recorded and checked instead ("racily clean" in
 * git). A folder is checked by its list of entries. Anything else (another pipeline file, other `--set`
 * values, another store, another version of this tool) gives another key, and the full path runs.
 *
 * The snapshot describes the files the run recorded, not merely the files as they are when it ends: a dep or
 * out the run hashed must still have the stat it had then (and, if recently written, the same digest), or no
 * snapshot is taken. Otherwise a dep edited while the run went on, after its stage had hashed it, would be
 * recorded as "unchanged" in its new state, and the next run would report nothing to do for a stage the lock
 * file says is stale.
 */
import { hash } from "node:crypto"
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeFileSync,
} from "node:fs"
import { join } from "node:path"
import { FINGERPRINT_VERSION } from "./fingerprint.js"
import type { Observation } from "./stat-cache.js"

/** What a snapshot is valid for: a run of this pipeline file with these options. */
export interface SnapshotKey {
  readonly file: string
  readonly root: string
  readonly storeDir: string
  readonly sets: ReadonlyArray<string>
  readonly gpus: number
  readonly version: string
}

/** One file or folder and its state when the snapshot was taken. */
type Entry =
  | readonly [path: string, follow: 0 | 1, kind: "file", stat: string, digest: string | null]
  | readonly [path: string, follow: 0 | 1, kind: "dir", stat: string, listing: string]
  | readonly [path: string, follow: 0 | 1, kind: "missing"]

/** What a run that finds the snapshot true reports: the pipeline's name, params and stages. */
export interface SnapshotSummary {
  readonly name: string
  readonly params: Readonly<Record<string, unknown>>
  readonly stages: ReadonlyArray<{ readonly name: string; readonly fingerprint: string }>
}

/** A snapshot file. */
interface Snapshot {
  readonly key: string
  readonly takenAt: number
  readonly summary: SnapshotSummary
  readonly entries: ReadonlyArray<Entry>
}

const RACY_WINDOW_MS = 2000
/** A racy file larger than this is not read to take a snapshot: there is then no snapshot this time. */
const RACY_READ_LIMIT = 16 * 1024 * 1024

/** No snapshot can be taken now (a reason, not an error to report: the next run takes the full path). */
class NoSnapshot extends Error {}

const sha256 = (data: string | Buffer): string => hash("sha256", data, "hex")

const keyOf = (k: SnapshotKey): string =>
  sha256(
    JSON.stringify([
      k.file,
      k.root,
      k.storeDir,
      k.sets,
      k.gpus,
      k.version,
      FINGERPRINT_VERSION,
      process.versions.node.split(".")[0],
    ]),
  )

/** Where the snapshot of a pipeline file lives. */
export const snapshotPath = (root: string, file: string): string =>
  join(root, ".pipeline", "cache", "snapshots", `${sha256(file)}.json`)

const statKey = (st: Stats): string => `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}:${st.mode}`

// Plain (not bigint) stats: a fully cached rerun stats every file, and bigint stats cost it ~50 ms at 1,000
// stages.
const statOf = (path: string, follow: 0 | 1): Stats | undefined =>
  (follow ? statSync : lstatSync)(path, { throwIfNoEntry: false })

/**
 * Whether `st` is the stat the run saw (an observation's key: size, mtime and ctime in ns, inode). Times are
 * compared to within a microsecond, the precision of a plain stat's milliseconds: a change after the run
 * hashed the file sets its mtime and ctime to a later time than the hash, which was itself after the write
 * the run saw; and a recently written file is checked by its content as well.
 */
const sameAsSeen = (st: Stats, seen: Observation): boolean => {
  const [size, mtimeNs, ctimeNs, ino] = seen.key.split(":").map(BigInt)
  const near = (ns: bigint | undefined, ms: number) =>
    ns !== undefined && Math.abs(Number(ns) / 1e6 - ms) < 0.001
  return (
    BigInt(st.size) === size &&
    BigInt(st.ino) === ino &&
    near(mtimeNs, st.mtimeMs) &&
    near(ctimeNs, st.ctimeMs)
  )
}

const listing = (dir: string): string => sha256(readdirSync(dir).sort().join("\0"))

/** What the run saw of a file when it hashed it (see `StatCache.observed`). */
export type Observed = (abs: string) => Observation | undefined

/** The entries of `path` and, for a folder, of everything below it. */
const describe = (path: string, follow: 0 | 1, takenAt: number, observed: Observed, into: Entry[]): void => {
  const st = statOf(path, follow)
  if (!st) {
    into.push([path, follow, "missing"])
    return
  }
  if (st.isDirectory()) {
    into.push([path, follow, "dir", statKey(st), listing(path)])
    for (const name of readdirSync(path).sort()) describe(join(path, name), follow, takenAt, observed, into)
    return
  }
  const seen = observed(path)
  // changed since the run hashed it: what is there now is not what the lock file records
  if (seen !== undefined && !sameAsSeen(st, seen)) throw new NoSnapshot(path)
  const racy = st.mtimeMs >= takenAt - RACY_WINDOW_MS
  if (!racy) {
    into.push([path, follow, "file", statKey(st), null])
    return
  }
  // Recently written, so its stat alone might miss a change: the entry carries a digest, which every check
  // compares with what the file then holds. For a file the run hashed that is the digest the run saw, as its
  // stat says nothing changed since (a change the stat missed shows at the check); any other is read now.
  if (seen !== undefined) {
    into.push([path, follow, "file", statKey(st), seen.digest])
    return
  }
  if (st.size > RACY_READ_LIMIT) throw new NoSnapshot(path)
  into.push([path, follow, "file", statKey(st), sha256(readFileSync(path))])
}

/**
 * Take and save a snapshot. `reads` are followed through symbolic links, `writes` are not; `observed` says
 * what the run saw of the files it hashed. Gives false (and removes any old snapshot) when one cannot be taken
 * now: a file the run hashed has changed since, a large file was written too recently to trust its stat, or a
 * file vanished while being described.
 */
export const writeSnapshot = (
  key: SnapshotKey,
  summary: SnapshotSummary,
  reads: Iterable<string>,
  writes: Iterable<string>,
  observed: Observed,
): boolean => {
  const file = snapshotPath(key.root, key.file)
  try {
    write(file, key, summary, reads, writes, observed)
    return true
  } catch {
    rmSync(file, { force: true })
    return false
  }
}

const write = (
  file: string,
  key: SnapshotKey,
  summary: SnapshotSummary,
  reads: Iterable<string>,
  writes: Iterable<string>,
  observed: Observed,
): void => {
  const takenAt = Date.now()
  const entries: Entry[] = []
  const seen = new Set<string>()
  for (const [paths, follow] of [
    [reads, 1],
    [writes, 0],
  ] as const)
    for (const path of paths) {
      if (seen.has(path)) continue
      seen.add(path)
      describe(path, follow, takenAt, observed, entries)
    }
  mkdirSync(join(file, ".."), { recursive: true })
  const tmp = `${file}.tmp-${process.pid}`
  writeFileSync(tmp, JSON.stringify({ key: keyOf(key), takenAt, summary, entries } satisfies Snapshot))
  renameSync(tmp, file)
}

const unchanged = (entry: Entry): boolean => {
  const [path, follow, kind] = entry
  const st = statOf(path, follow)
  if (kind === "missing") return st === undefined
  if (!st) return false
  if (kind === "dir") return st.isDirectory() && statKey(st) === entry[3] && listing(path) === entry[4]
  if (!st.isFile() || statKey(st) !== entry[3]) return false
  return entry[4] === null || sha256(readFileSync(path)) === entry[4]
}

/**
 * The summary of a snapshot that is still true for this key, or undefined (no snapshot, another key, or
 * anything changed). Never throws: a snapshot that cannot be read is no snapshot.
 */
export const checkSnapshot = (key: SnapshotKey): SnapshotSummary | undefined => {
  try {
    const snap = JSON.parse(readFileSync(snapshotPath(key.root, key.file), "utf8")) as Snapshot
    if (snap.key !== keyOf(key)) return undefined
    return snap.entries.every(unchanged) ? snap.summary : undefined
  } catch {
    return undefined
  }
}
