/**
 * `pipeline gc`: delete store objects nothing needs. Roots: every lock file's outs, outs saved because they
 * were edited by hand, and the run cache — all of it by default; with `--keep-last N` only the entries the
 * last N runs used; with `--older-than D` entries younger than D. Also deletes the scratch folders no run
 * would resume from (`unusedScratch`). Takes the project lock.
 */
import { existsSync } from "node:fs"
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import { savedLogPath } from "../artifacts-live.js"
import { parseDuration } from "../duration.js"
import { UsageError } from "../errors.js"
import { readLock } from "../lockfile.js"
import { projectLock } from "../project-lock.js"
import type { OutDigest } from "../run-cache.js"
import { listRunRecords } from "../run-record.js"
import { compactScratchJournal, removeScratch, scratchRoot, unusedScratch } from "../scratch.js"
import { Store } from "../store.js"
import type { CommandSpec } from "./context.js"
import { jsonOption, locationOptions, positiveInt, str } from "./options.js"
import { storeDirOf } from "./project.js"
import { projectRootOf } from "./root.js"
import { reportStoreErrors, storeWork } from "./store-errors.js"

/** Lock files of the project's pipelines: `*.lock` at the root and under `pipelines/`. */
const lockFiles = async (root: string): Promise<string[]> => {
  const found: string[] = []
  for (const dir of [root, join(root, "pipelines")]) {
    const names = await readdir(dir).catch(() => [] as string[])
    for (const n of names) if (n.endsWith(".lock")) found.push(join(dir, n))
  }
  return found
}

const savedOuts = async (stateDir: string, notBefore: number): Promise<OutDigest[]> => {
  const text = await readFile(savedLogPath(stateDir), "utf8").catch(() => "")
  const outs: OutDigest[] = []
  for (const line of text.split("\n")) {
    try {
      const v = JSON.parse(line) as {
        time: string
        kind: "file" | "dir"
        digest: string
        size: number
        executable?: boolean
      }
      if (Date.parse(v.time) >= notBefore)
        outs.push(
          v.kind === "dir"
            ? { kind: "dir", digest: v.digest, size: v.size }
            : { kind: "file", digest: v.digest, size: v.size, executable: v.executable === true },
        )
    } catch {}
  }
  return outs
}

export const gc: CommandSpec = {
  summary:
    "delete store objects that no lock file, kept run-cache entry or saved out needs, and stale scratch folders",
  usage: "[--keep-last N] [--older-than D] [--dry-run]",
  options: {
    "keep-last": {
      type: "string",
      placeholder: "N",
      help: "keep only the run-cache entries the last N runs used",
    },
    "older-than": {
      type: "string",
      placeholder: "D",
      help: "drop run-cache entries (and saved outs, and scratch folders unused) older than D (e.g. 30d, 12h)",
    },
    "dry-run": { type: "boolean", help: "say what would be deleted; delete nothing" },
    ...jsonOption,
    ...locationOptions,
  },
  run: (values, _positionals, ctx) =>
    Effect.gen(function* () {
      const root = yield* projectRootOf(values, ctx)
      const stateDir = join(root, ".pipeline")
      const storeDir = storeDirOf(root, values, ctx)
      const keepLast =
        str(values, "keep-last") === undefined ? undefined : yield* positiveInt(values, "keep-last", 1)
      const olderThanText = str(values, "older-than")
      const days = olderThanText?.match(/^(\d+(?:\.\d+)?)d$/)
      const olderThanMs =
        olderThanText === undefined
          ? undefined
          : days
            ? Number(days[1]) * 86_400_000
            : parseDuration(olderThanText)
      if (olderThanText !== undefined && olderThanMs === undefined)
        return yield* new UsageError({
          message: `--older-than "${olderThanText}" is not a duration`,
          hint: "Write it like 30d, 12h, 90m or 3600s.",
        })
      const dryRun = values["dry-run"] === true
      const report = yield* Effect.scoped(
        Effect.gen(function* () {
          yield* projectLock(stateDir, { command: ctx.argv.join(" ") })
          return yield* storeWork("collect garbage in", storeDir, async () => {
            const store = await Store.open(storeDir)
            try {
              const cutoff = olderThanMs === undefined ? 0 : Date.now() - olderThanMs
              const recent =
                keepLast === undefined
                  ? undefined
                  : new Set(
                      (await listRunRecords(join(root, "runs")))
                        .slice(-keepLast)
                        .flatMap((r) => Object.values(r.stages).map((s) => s.fingerprint))
                        .filter((f): f is string => f !== null),
                    )
              const keep = new Set<string>()
              const addOut = async (o: OutDigest) => {
                for (const d of await store.objectsOf(o)) keep.add(d)
              }
              const lockedFps = new Set<string>()
              for (const f of await lockFiles(root)) {
                for (const s of Object.values((await readLock(f)).stages)) {
                  lockedFps.add(s.fingerprint)
                  for (const o of s.outs) await addOut(o)
                }
              }
              for (const o of await savedOuts(stateDir, cutoff)) await addOut(o)
              let droppedEntries = 0
              for await (const entry of store.listRunCache()) {
                const kept =
                  lockedFps.has(entry.fingerprint) ||
                  ((recent === undefined || recent.has(entry.fingerprint)) && entry.mtimeMs >= cutoff)
                if (kept) for (const o of entry.outs) await addOut(o)
                else {
                  droppedEntries++
                  if (!dryRun) await store.deleteRunCache(entry.fingerprint)
                }
              }
              if (!dryRun) await store.compactRunCache()
              let removed = 0
              for await (const digest of store.listObjects()) {
                if (keep.has(digest)) continue
                removed++
                if (!dryRun) await store.removeObject(digest)
              }
              const scratch = await unusedScratch(
                scratchRoot(stateDir),
                await listRunRecords(join(root, "runs")),
                existsSync,
                olderThanMs === undefined ? undefined : cutoff,
              )
              if (!dryRun) {
                for (const fp of scratch) removeScratch(scratchRoot(stateDir), fp)
                await compactScratchJournal(scratchRoot(stateDir))
              }
              return { removed, kept: keep.size, droppedEntries, scratch: scratch.length }
            } finally {
              await store.close()
            }
          })
        }),
      )
      ctx.stderr.write(
        `${dryRun ? "would remove" : "removed"} ${report.removed} objects, ${report.droppedEntries} run-cache entries and ${report.scratch} scratch folders; kept ${report.kept} objects\n`,
      )
      if (values.json === true)
        ctx.stdout.write(
          `${JSON.stringify({ dry_run: dryRun, removed_objects: report.removed, removed_run_cache_entries: report.droppedEntries, removed_scratch_folders: report.scratch, kept_objects: report.kept })}\n`,
        )
      return 0
    }).pipe(reportStoreErrors(ctx)),
}
