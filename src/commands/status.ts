/**
 * `pipeline status`: for each stage, fresh, restorable or stale, and why — relative to the lock file and
 * the store. Changes nothing.
 */

import { Effect } from "effect"
import { artifactsLive } from "../artifacts-live.js"
import { selectStages } from "../graph.js"
import { readLock } from "../lockfile.js"
import { lockFileFor } from "../pipeline-path.js"
import { planPipeline } from "../plan.js"
import type { CommandSpec } from "./context.js"
import { jsonOption, locationOptions, setOption } from "./options.js"
import { withProject } from "./project.js"
import { reportStoreErrors } from "./store-errors.js"

export const status: CommandSpec = {
  summary: "say which stages are fresh, restorable from the cache, or stale, and why",
  usage: "[PIPELINE] [options]",
  options: { ...setOption, ...jsonOption, ...locationOptions },
  run: (values, positionals, ctx) =>
    withProject(values, positionals, ctx, ({ pipeline, stateDir, storeDir, parseCache }) =>
      Effect.gen(function* () {
        const selected = yield* selectStages(pipeline, {})
        const lock = yield* Effect.promise(() => readLock(lockFileFor(pipeline.file), parseCache))
        const plans = yield* planPipeline(pipeline, lock, selected).pipe(
          Effect.provide(artifactsLive({ root: pipeline.root, stateDir, storeDir })),
        )
        const width = Math.max(...[...plans.keys()].map((n) => n.length))
        for (const [name, p] of plans) {
          ctx.stderr.write(
            `${p.state.padEnd(10)} ${name.padEnd(width)}${p.reasons.length ? `  ${p.reasons[0]}` : ""}\n`,
          )
          for (const r of p.reasons.slice(1)) ctx.stderr.write(`${"".padEnd(11 + width)}  ${r}\n`)
        }
        const stale = [...plans.values()].filter((p) => p.state !== "fresh").length
        ctx.stderr.write(
          stale === 0
            ? "Everything is up to date.\n"
            : `${stale} of ${plans.size} stages would change on \`pipeline run\`.\n`,
        )
        if (values.json === true)
          ctx.stdout.write(
            `${JSON.stringify({
              stages: Object.fromEntries(
                [...plans].map(([n, p]) => [
                  n,
                  { fresh: p.state === "fresh", state: p.state, reasons: p.reasons },
                ]),
              ),
            })}\n`,
          )
        return 0
      }).pipe(reportStoreErrors(ctx)),
    ),
}
