/**
 * The live `Artifacts` layer: the real workspace, the content-addressed store (`store.ts`) and the stat
 * cache (`stat-cache.ts`), opened once per command and closed with its scope.
 */
import { lstatSync, rmSync } from "node:fs"
import { appendFile, mkdir } from "node:fs/promises"
import { isAbsolute, join, posix } from "node:path"
import { Effect, Layer } from "effect"
import { Artifacts, type ArtifactsApi, type ContentState } from "./artifacts.js"
import { StoreCorrupt, StoreIOError } from "./errors.js"
import { ioError } from "./fs-util.js"
import { type DigestOptions, digestPath, digestPathSync, NEEDS_ASYNC, type PathDigest } from "./hash.js"
import { linkOutside } from "./paths.js"
import { outRecord } from "./run-cache.js"
import { StatCache } from "./stat-cache.js"
import { Store } from "./store.js"

/** At most this many bytes of hashed outs are kept for saving them without a second read. */
const MAX_KEPT_BYTES = 64 * 1024 * 1024

/** Where things are. */
export interface ArtifactsConfig {
  readonly root: string
  /** `<root>/.pipeline`: the stat cache and the saved-outs log */
  readonly stateDir: string
  readonly storeDir: string
}

const asStoreError =
  (op: string, path: string) =>
  (e: unknown): StoreIOError | StoreCorrupt =>
    e instanceof StoreCorrupt || e instanceof StoreIOError ? e : (ioError(op, path, e) as StoreIOError)

const asIOError =
  (op: string, path: string) =>
  (e: unknown): StoreIOError => {
    const err = asStoreError(op, path)(e)
    return err instanceof StoreCorrupt
      ? new StoreIOError({ op, path, message: `store object ${err.digest} is corrupt (${err.path})` })
      : err
  }

/**
 * Run a store call as one effect, its failures mapped by `wrap`. A call that finished without a promise (most
 * calls a run makes: a stat, a small file) goes on without suspending the fiber, which is most of the cost of
 * a call this small.
 */
const call = <A, E>(f: () => A | Promise<A>, wrap: (e: unknown) => E): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    let result: A | Promise<A>
    try {
      result = f()
    } catch (e) {
      return Effect.fail(wrap(e))
    }
    return result instanceof Promise
      ? Effect.tryPromise({ try: () => result, catch: wrap })
      : Effect.succeed(result)
  })

/** A store call: store methods throw `StoreIOError`/`StoreCorrupt`; anything else is wrapped as an I/O error. */
const attempt = <A>(
  op: string,
  path: string,
  f: () => A | Promise<A>,
): Effect.Effect<A, StoreIOError | StoreCorrupt> => call(f, asStoreError(op, path))

/** `attempt`, with a corrupt object reported as an I/O error. */
const io = <A>(op: string, path: string, f: () => A | Promise<A>): Effect.Effect<A, StoreIOError> =>
  call(f, asIOError(op, path))

/** The file recording outs saved because they matched nothing in the store (read by `pipeline recover`). */
export const savedLogPath = (stateDir: string): string => join(stateDir, "saved.jsonl")

/** Build the live layer for one project. */
export const artifactsLive = (config: ArtifactsConfig): Layer.Layer<Artifacts, StoreIOError> =>
  Layer.scoped(
    Artifacts,
    Effect.gen(function* () {
      yield* io("create", config.stateDir, () => mkdir(config.stateDir, { recursive: true }))
      const store = yield* Effect.acquireRelease(
        io("open the store at", config.storeDir, () => Store.open(config.storeDir)),
        (s) => Effect.promise(() => s.close()),
      )
      const cache = yield* io("read", config.stateDir, () =>
        StatCache.load(join(config.stateDir, "stat-cache.json")),
      )
      const abs = (path: string) => (isAbsolute(path) ? path : join(config.root, path))
      /**
       * An out is read, written or removed only inside the project. The loader refused outs that lead out
       * through a symbolic link; this catches a folder on the way replaced by such a link since (by an earlier
       * stage, or by hand during the run). A link at the out itself is refused by the hasher, and is replaced
       * or unlinked, never followed, by a restore or a removal.
       */
      const checkInside = (op: string, path: string): void => {
        const parent = posix.dirname(path)
        const link = isAbsolute(path) ? path : parent === "." ? undefined : linkOutside(parent, config.root)
        if (link !== undefined)
          throw new StoreIOError({
            op,
            path: abs(path),
            message: `refusing to ${op} ${path}: ${link === path ? "it is not inside the project" : `the symbolic link "${link}" leads outside the project`}; replace the link with a folder`,
          })
      }
      /** the last full digest of each out, so saving a dir does not hash it again */
      const seen = new Map<string, PathDigest>()
      /**
       * The bytes of each small out file as they were read for its digest in `seen`, so saving it does not
       * read it again: the object stored is exactly what was hashed. Dropped once saved.
       */
      const contents = new Map<string, Buffer>()
      // Outs hashed only to check them (a fresh stage's) are never saved: a bound on what is kept for them.
      let kept = 0
      const keep = (path: string, bytes: Buffer) => {
        if (kept + bytes.length > MAX_KEPT_BYTES) return
        contents.set(path, bytes)
        kept += bytes.length
      }
      const take = (path: string): Buffer | undefined => {
        const bytes = contents.get(path)
        if (bytes !== undefined) {
          contents.delete(path)
          kept -= bytes.length
        }
        return bytes
      }
      const digestOf = (path: string, opts: DigestOptions) => {
        const quick = digestPathSync(path, cache, opts)
        return quick === NEEDS_ASYNC ? digestPath(path, cache, opts) : quick
      }
      /** Digest one path: synchronously when the stat cache or a small file allows, else a promise. */
      const digestOne = (path: string, role: "dep" | "out") => {
        if (role === "out") checkInside("read", path)
        const state = (d: PathDigest | undefined) => {
          if (!d) return undefined
          if (role === "out") seen.set(path, d)
          const { path: _path, ...rest } = outRecord(path, d)
          return rest
        }
        let d: ReturnType<typeof digestOf>
        if (role === "dep") d = digestOf(abs(path), { followSymlinks: true })
        else {
          take(path)
          const file = abs(path)
          d = digestOf(file, {
            followSymlinks: false,
            onBytes: (read, bytes) => {
              if (read === file) keep(path, bytes)
            },
          })
        }
        return d instanceof Promise ? d.then(state) : state(d)
      }
      const api: ArtifactsApi = {
        digest: (path, role) => io("hash", abs(path), () => digestOne(path, role)),
        digestAll: (paths, role) =>
          call(
            () => {
              const all: Array<ReturnType<typeof digestOne>> = []
              let pending = false
              for (const path of paths) {
                let d: ReturnType<typeof digestOne>
                try {
                  d = digestOne(path, role)
                } catch (e) {
                  throw asIOError("hash", abs(path))(e)
                }
                if (d instanceof Promise) {
                  pending = true
                  all.push(d.catch((e: unknown) => Promise.reject(asIOError("hash", abs(path))(e))))
                } else all.push(d)
              }
              return pending ? Promise.all(all) : (all as ReadonlyArray<ContentState | undefined>)
            },
            (e) => asIOError("hash", config.root)(e),
          ),
        isStored: (state) => io("read", store.dir, () => store.has(state.digest)),
        save: (path, state) =>
          io("save", abs(path), () => {
            // The store checks the content while copying: an out that changed since it was hashed fails there.
            const check = (d: PathDigest | undefined) => {
              if (!d || d.digest !== state.digest)
                throw new StoreIOError({
                  op: "save",
                  path: abs(path),
                  message: `${path} changed while it was being saved: is another process writing it?`,
                })
              return store.putOut(abs(path), d)
            }
            const known = seen.get(path)
            const bytes = take(path)
            if (known?.digest === state.digest && known.kind === "file" && bytes !== undefined)
              return store.putSmallBytes(known.digest, bytes)
            return known?.digest === state.digest
              ? check(known)
              : digestPath(abs(path), cache, { followSymlinks: false }).then(check)
          }),
        restore: (out) =>
          attempt("restore", abs(out.path), () => {
            checkInside("restore", out.path)
            return store.restoreOut(out, abs(out.path), cache)
          }),
        // Synchronous: usually there is nothing to remove, and an lstat is cheaper than a thread-pool trip (or than
        // the ENOENT `rmSync` would throw and catch).
        remove: (path) =>
          io("remove", abs(path), () => {
            checkInside("remove", path)
            if (lstatSync(abs(path), { throwIfNoEntry: false }) !== undefined)
              rmSync(abs(path), { recursive: true, force: true })
          }),
        lookup: (fp) => io("read", store.dir, () => store.getRunCache(fp)),
        record: (run) => io("write", store.dir, () => store.putRunCache(run)),
        noteSaved: (entry) =>
          io("write", savedLogPath(config.stateDir), () =>
            appendFile(
              savedLogPath(config.stateDir),
              `${JSON.stringify({ time: new Date().toISOString(), run: entry.runId, stage: entry.stage, ...entry.out })}\n`,
            ),
          ),
        observed: (abs) => cache.observed(abs),
        flush: io("write", config.stateDir, () => cache.save()),
      }
      return api
    }),
  )
