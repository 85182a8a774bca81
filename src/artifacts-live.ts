/**
 * The live `Artifacts` layer: the real workspace, the content-addressed store (`store.ts`) and the stat
 * cache (`stat-cache.ts`), opened once per command and closed with its scope.
 */
import { rmSync } from "node:fs"
import { appendFile, mkdir } from "node:fs/promises"
import { isAbsolute, join, posix } from "node:path"
import { Effect, Layer } from "effect"
import { Artifacts, type ArtifactsApi } from "./artifacts.js"
import { StoreCorrupt, StoreIOError } from "./errors.js"
import { ioError } from "./fs-util.js"
import { digestPath, type PathDigest } from "./hash.js"
import { linkOutside } from "./paths.js"
import { outRecord } from "./run-cache.js"
import { StatCache } from "./stat-cache.js"
import { Store } from "./store.js"

/** Where things are. */
export interface ArtifactsConfig {
  readonly root: string
  /** `<root>/.pipeline`: the stat cache and the saved-outs log */
  readonly stateDir: string
  readonly storeDir: string
}

/** Store methods throw `StoreIOError`/`StoreCorrupt`; anything else is wrapped as an I/O error. */
const attempt = <A>(
  op: string,
  path: string,
  f: () => Promise<A>,
): Effect.Effect<A, StoreIOError | StoreCorrupt> =>
  Effect.tryPromise({
    try: f,
    catch: (e) =>
      e instanceof StoreCorrupt || e instanceof StoreIOError ? e : (ioError(op, path, e) as StoreIOError),
  })

const io = <A>(op: string, path: string, f: () => Promise<A>): Effect.Effect<A, StoreIOError> =>
  attempt(op, path, f).pipe(
    Effect.catchTag("StoreCorrupt", (e) =>
      Effect.fail(new StoreIOError({ op, path, message: `store object ${e.digest} is corrupt (${e.path})` })),
    ),
  )

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
      const inside = (op: string, path: string) =>
        Effect.suspend(() => {
          const parent = posix.dirname(path)
          const link = isAbsolute(path) ? path : parent === "." ? undefined : linkOutside(parent, config.root)
          return link === undefined
            ? Effect.void
            : Effect.fail(
                new StoreIOError({
                  op,
                  path: abs(path),
                  message: `refusing to ${op} ${path}: ${link === path ? "it is not inside the project" : `the symbolic link "${link}" leads outside the project`}; replace the link with a folder`,
                }),
              )
        })
      /** the last full digest of each out, so saving a dir does not hash it again */
      const seen = new Map<string, PathDigest>()
      const api: ArtifactsApi = {
        digest: (path, role) =>
          (role === "out" ? inside("read", path) : Effect.void)
            .pipe(
              Effect.zipRight(
                io("hash", abs(path), () => digestPath(abs(path), cache, { followSymlinks: role === "dep" })),
              ),
            )
            .pipe(
              Effect.map((d) => {
                if (!d) return undefined
                if (role === "out") seen.set(path, d)
                const { path: _path, ...state } = outRecord(path, d)
                return state
              }),
            ),
        isStored: (state) => io("read", store.dir, () => store.has(state.digest)),
        save: (path, state) =>
          io("save", abs(path), async () => {
            // The store checks the content while copying: an out that changed since it was hashed fails there.
            const known = seen.get(path)
            const d =
              known?.digest === state.digest
                ? known
                : await digestPath(abs(path), cache, { followSymlinks: false })
            if (!d || d.digest !== state.digest)
              throw new StoreIOError({
                op: "save",
                path: abs(path),
                message: `${path} changed while it was being saved: is another process writing it?`,
              })
            await store.putOut(abs(path), d)
          }),
        restore: (out) =>
          inside("restore", out.path).pipe(
            Effect.zipRight(
              attempt("restore", abs(out.path), () => store.restoreOut(out, abs(out.path), cache)),
            ),
          ),
        // Synchronous: usually there is nothing to remove, and an lstat is cheaper than a thread-pool trip.
        remove: (path) =>
          inside("remove", path).pipe(
            Effect.zipRight(
              io("remove", abs(path), async () => rmSync(abs(path), { recursive: true, force: true })),
            ),
          ),
        lookup: (fp) => io("read", store.dir, () => store.getRunCache(fp)),
        record: (run) => io("write", store.dir, () => store.putRunCache(run)),
        noteSaved: (entry) =>
          io("write", savedLogPath(config.stateDir), () =>
            appendFile(
              savedLogPath(config.stateDir),
              `${JSON.stringify({ time: new Date().toISOString(), run: entry.runId, stage: entry.stage, ...entry.out })}\n`,
            ),
          ),
        flush: io("write", config.stateDir, () => cache.save()),
      }
      return api
    }),
  )
