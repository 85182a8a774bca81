/**
 * `pipeline verify`: re-hash every object in the store; exit 1 if any is corrupt. `--repair` removes the bad
 * objects and the run-cache entries that point at them, so the next run rebuilds those stages.
 */
import { Effect } from "effect"
import { Store } from "../store.js"
import type { CommandSpec } from "./context.js"
import { jsonOption, locationOptions } from "./options.js"
import { storeDirOf } from "./project.js"
import { projectRootOf } from "./root.js"
import { reportStoreErrors, storeWork } from "./store-errors.js"

export const verify: CommandSpec = {
  summary: "re-hash the store; exit 1 if any object is corrupt (--repair removes them)",
  usage: "[--repair] [--json]",
  options: {
    repair: { type: "boolean", help: "remove corrupt objects and the run-cache entries that use them" },
    ...jsonOption,
    ...locationOptions,
  },
  run: (values, _positionals, ctx) =>
    Effect.gen(function* () {
      const root = yield* projectRootOf(values, ctx)
      const storeDir = storeDirOf(root, values, ctx)
      const result = yield* storeWork("verify the store at", storeDir, async () => {
        const store = await Store.open(storeDir)
        try {
          let checked = 0
          const corrupt: string[] = []
          for await (const digest of store.listObjects()) {
            checked++
            if (!(await store.verifyObject(digest))) corrupt.push(digest)
          }
          const dropped: string[] = []
          if (values.repair === true && corrupt.length > 0) {
            const bad = new Set(corrupt)
            for await (const entry of store.listRunCache()) {
              const uses = await Promise.all(
                entry.outs.map((o) => store.objectsOf(o).catch(() => new Set([o.digest]))),
              )
              if (uses.some((set) => [...set].some((d) => bad.has(d)))) {
                await store.deleteRunCache(entry.fingerprint)
                dropped.push(entry.fingerprint)
              }
            }
            for (const d of corrupt) await store.removeObject(d)
          }
          return { checked, corrupt, dropped }
        } finally {
          await store.close()
        }
      })
      for (const d of result.corrupt) ctx.stderr.write(`corrupt  ${d}\n`)
      if (result.corrupt.length === 0) ctx.stderr.write(`verified ${result.checked} objects: all intact\n`)
      else if (values.repair === true)
        ctx.stderr.write(
          `removed ${result.corrupt.length} corrupt objects and ${result.dropped.length} run-cache entries using them; the next run rebuilds those stages\n`,
        )
      else
        ctx.stderr.write(
          `${result.corrupt.length} of ${result.checked} objects are corrupt. Run \`pipeline verify --repair\` to remove them; the next run rebuilds what used them.\n`,
        )
      if (values.json === true)
        ctx.stdout.write(
          `${JSON.stringify({ checked: result.checked, corrupt: result.corrupt, repaired: values.repair === true, dropped_run_cache: result.dropped })}\n`,
        )
      return result.corrupt.length > 0 && values.repair !== true ? 1 : 0
    }).pipe(reportStoreErrors(ctx)),
}
