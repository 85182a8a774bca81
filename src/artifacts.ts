/**
 * The `Artifacts` service: the executor's one seam onto the workspace and the content-addressed store.
 * It hashes deps and outs (through the stat cache), saves outs into the store, restores them, and keeps the
 * run cache (fingerprint -> outs). The live layer is in `artifacts-live.ts`; tests may provide their own.
 */
import { Context, type Effect } from "effect"
import type { StoreCorrupt, StoreIOError } from "./errors.js"
import type { LockOut } from "./lockfile.js"
import type { OutDigest, RunCacheEntry } from "./run-cache.js"
import type { Observation } from "./stat-cache.js"

/** The content state of a dep or out: its kind and digest (a dir's digest is its manifest's). */
export type ContentState = OutDigest

/** A run-cache entry: the outs one fingerprint produced. */
export type CachedRun = RunCacheEntry

/** The workspace and the store, as the executor sees them. Paths are project-relative or absolute. */
export interface ArtifactsApi {
  /** Digest a path; undefined if it does not exist. `out` refuses symbolic links, `dep` follows them. */
  readonly digest: (
    path: string,
    role: "dep" | "out",
  ) => Effect.Effect<ContentState | undefined, StoreIOError>
  /**
   * `digest` for several paths as one effect, in order: a stage's deps or outs (one effect per path cost the
   * executor more than the hashing on a run of many small stages).
   */
  readonly digestAll: (
    paths: ReadonlyArray<string>,
    role: "dep" | "out",
  ) => Effect.Effect<ReadonlyArray<ContentState | undefined>, StoreIOError>
  /** Is this content (every object it needs) in the store? */
  readonly isStored: (state: ContentState) => Effect.Effect<boolean, StoreIOError>
  /** Save a workspace out into the store (no-op for what is already there). */
  readonly save: (path: string, state: ContentState) => Effect.Effect<void, StoreIOError>
  /** Put an out back into the workspace from the store, verifying its digest. */
  readonly restore: (out: LockOut) => Effect.Effect<void, StoreCorrupt | StoreIOError>
  /** Remove an out from the workspace (before its stage runs). */
  readonly remove: (path: string) => Effect.Effect<void, StoreIOError>
  readonly lookup: (fingerprint: string) => Effect.Effect<CachedRun | undefined, StoreIOError>
  readonly record: (run: CachedRun) => Effect.Effect<void, StoreIOError>
  /** Note an out saved because it matched nothing in the store, so `pipeline recover` can find it. */
  readonly noteSaved: (entry: {
    readonly runId: string
    readonly stage: string
    readonly out: LockOut
  }) => Effect.Effect<void, StoreIOError>
  /**
   * What this run last saw of the file at absolute path `abs` when it hashed it (or found its digest in the
   * stat cache): the stat it had then and its digest. Undefined for a file the run did not hash.
   */
  readonly observed: (abs: string) => Observation | undefined
  /** Persist the stat cache. */
  readonly flush: Effect.Effect<void, StoreIOError>
}

/** The service tag. */
export class Artifacts extends Context.Tag("pipeline/Artifacts")<Artifacts, ArtifactsApi>() {}
