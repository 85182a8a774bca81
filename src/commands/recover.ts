/**
 * `pipeline recover DIGEST --to PATH`: put back an out that a run saved because it matched nothing in the
 * store (it had been edited by hand) before replacing it. The digest may be a unique prefix.
 */
import { lstat, readFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { Effect } from "effect"
import { savedLogPath } from "../artifacts-live.js"
import { UsageError } from "../errors.js"
import type { OutDigest } from "../run-cache.js"
import { StatCache } from "../stat-cache.js"
import { Store } from "../store.js"
import type { CommandSpec } from "./context.js"
import { locationOptions, str } from "./options.js"
import { storeDirOf } from "./project.js"
import { projectRootOf } from "./root.js"
import { reportStoreErrors, storeWork } from "./store-errors.js"

interface Saved {
  readonly time: string
  readonly stage: string
  readonly path: string
  readonly out: OutDigest
}

const readSaved = async (stateDir: string): Promise<Saved[]> => {
  const text = await readFile(savedLogPath(stateDir), "utf8").catch(() => "")
  const out: Saved[] = []
  for (const line of text.split("\n")) {
    try {
      const v = JSON.parse(line) as {
        time: string
        stage: string
        path: string
        kind: "file" | "dir"
        digest: string
        size: number
        executable?: boolean
      }
      out.push({
        time: v.time,
        stage: v.stage,
        path: v.path,
        out:
          v.kind === "dir"
            ? { kind: "dir", digest: v.digest, size: v.size }
            : { kind: "file", digest: v.digest, size: v.size, executable: v.executable === true },
      })
    } catch {}
  }
  return out
}

export const recover: CommandSpec = {
  summary: "put back an out that a run saved before replacing it (see the run's `saved` line)",
  usage: "[DIGEST] [--to PATH]   (no DIGEST: list saved outs)",
  options: {
    to: { type: "string", placeholder: "PATH", help: "where to write it (must not exist yet)" },
    ...locationOptions,
  },
  run: (values, positionals, ctx) =>
    Effect.gen(function* () {
      const root = yield* projectRootOf(values, ctx)
      const stateDir = join(root, ".pipeline")
      const saved = yield* Effect.promise(() => readSaved(stateDir))
      const want = positionals[0]
      if (want === undefined) {
        if (saved.length === 0) ctx.stderr.write("No outs have been saved.\n")
        for (const s of saved)
          ctx.stdout.write(`${s.out.digest.slice(0, 12)}  ${s.time}  ${s.path} (stage ${s.stage})\n`)
        return 0
      }
      const matches = [
        ...new Map(saved.filter((s) => s.out.digest.startsWith(want)).map((s) => [s.out.digest, s])).values(),
      ]
      const [entry] = matches
      if (matches.length !== 1 || !entry)
        return yield* new UsageError({
          message:
            matches.length === 0
              ? `no saved out has a digest starting with "${want}"`
              : `"${want}" matches ${matches.length} saved outs`,
          hint: "Run `pipeline recover` with no argument to list saved outs, and pass a longer prefix.",
        })
      const to = resolve(ctx.cwd, str(values, "to") ?? `${entry.path}.recovered`)
      const exists = yield* Effect.promise(() =>
        lstat(to).then(
          () => true,
          () => false,
        ),
      )
      if (exists)
        return yield* new UsageError({
          message: `${to} already exists`,
          hint: "Pass --to with a path that does not exist yet.",
        })
      const storeDir = storeDirOf(root, values, ctx)
      yield* storeWork("recover from", storeDir, async () => {
        const store = await Store.open(storeDir)
        try {
          await store.restoreOut(entry.out, to, StatCache.memory())
        } finally {
          await store.close()
        }
      })
      ctx.stderr.write(`recovered ${entry.path} (saved ${entry.time}) to ${to}\n`)
      return 0
    }).pipe(reportStoreErrors(ctx)),
}
