/**
 * Store work in commands: a failing store operation becomes a tagged error, and the command reports it in one
 * line and exits 1 instead of crashing.
 */
import { Effect } from "effect"
import { type ProjectLocked, StoreCorrupt, StoreIOError, type UsageError } from "../errors.js"
import type { CliContext } from "./context.js"

/** Run `f`; what it throws becomes a `StoreIOError` (or stays the `StoreCorrupt` it is). */
export const storeWork = <A>(op: string, path: string, f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (e): StoreIOError | StoreCorrupt =>
      e instanceof StoreIOError || e instanceof StoreCorrupt
        ? e
        : new StoreIOError({
            op,
            path,
            message: `cannot ${op} ${path}: ${e instanceof Error ? e.message : String(e)}`,
          }),
  })

const fail = (ctx: CliContext, text: string) =>
  Effect.sync(() => {
    ctx.stderr.write(text)
    return 1
  })

/** Report store and lock errors of a command on stderr and exit 1; usage errors pass through. */
export const reportStoreErrors =
  (ctx: CliContext) =>
  <R>(
    self: Effect.Effect<number, UsageError | StoreIOError | StoreCorrupt | ProjectLocked, R>,
  ): Effect.Effect<number, UsageError, R> =>
    self.pipe(
      Effect.catchTags({
        ProjectLocked: (e) =>
          fail(
            ctx,
            `error: another run holds this project (pid ${e.pid}${e.host === undefined ? "" : ` on ${e.host}`}, started ${e.startedAt}).\n   Wait for it to finish; if no such process exists, delete ${e.lockFile}.\n`,
          ),
        StoreCorrupt: (e) =>
          fail(
            ctx,
            `error: store object ${e.digest} is corrupt (${e.path}).\n   Run \`pipeline verify --repair\`.\n`,
          ),
        StoreIOError: (e) => fail(ctx, `error: ${e.message}\n`),
      }),
    )
