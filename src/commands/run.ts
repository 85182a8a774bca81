/**
 * `pipeline run`: execute a pipeline (or `--dry-run`: say what would happen).
 */

import { availableParallelism } from "node:os"
import { Effect, Layer } from "effect"
import pkg from "../../package.json" with { type: "json" }
import { artifactsLive } from "../artifacts-live.js"
import { detectGpus } from "../compute/detect.js"
import { UsageError } from "../errors.js"
import { EventSink } from "../events.js"
import { snapshotKeyOf } from "../fast-run.js"
import { selectStages } from "../graph.js"
import { readLock } from "../lockfile.js"
import { lockFileFor } from "../pipeline-path.js"
import { planPipeline } from "../plan.js"
import { coalescing } from "../reporters/coalesce.js"
import { textReporter } from "../reporters/text.js"
import { type RunOutcome, runPipeline } from "../run.js"
import { stageRunnerLive } from "../runner.js"
import { spawnerProgram } from "../spawner-client.js"
import { tuneForStages } from "../v8-tuning.js"
import type { CommandSpec } from "./context.js"
import { jsonOption, locationOptions, positiveInt, setOption, strs } from "./options.js"
import { withProject } from "./project.js"
import { reportStoreErrors } from "./store-errors.js"

/** One spawner per core the run may use: more could only fork in turn. */
const spawnersFor = (jobs: number): number => Math.max(1, Math.min(jobs, availableParallelism()))

const summaryJson = (o: RunOutcome) => ({
  run: o.runId,
  status: o.status,
  stages: Object.fromEntries(
    [...o.results].map(([name, r]) => [
      name,
      { status: r.status, fingerprint: r.fingerprint ?? null, duration_ms: r.durationMs, reason: r.reason },
    ]),
  ),
})

export const run: CommandSpec = {
  summary: "run a pipeline: every stage whose inputs changed, restoring what the cache has",
  usage: "[PIPELINE] [options]",
  options: {
    ...setOption,
    jobs: { type: "string", placeholder: "N", help: "CPU slots (default: the number of CPUs)" },
    gpus: {
      type: "string",
      placeholder: "N",
      help: "GPU slots, device ids 0..N-1 (default: the GPUs detected)",
    },
    "dry-run": { type: "boolean", help: "say what would run, restore or stay; change nothing" },
    force: { type: "boolean", help: "rerun every selected stage" },
    "force-stage": {
      type: "string",
      multiple: true,
      placeholder: "STAGE",
      help: "rerun this stage (repeatable)",
    },
    only: {
      type: "string",
      multiple: true,
      placeholder: "STAGE",
      help: "run this stage and everything upstream of it",
    },
    downstream: {
      type: "string",
      multiple: true,
      placeholder: "STAGE",
      help: "run this stage and everything after it",
    },
    "keep-going": { type: "boolean", help: "after a failure, keep running stages that do not depend on it" },
    ...jsonOption,
    ...locationOptions,
  },
  run: (values, positionals, ctx) =>
    withProject(values, positionals, ctx, ({ pipeline, stateDir, storeDir, parseCache }) =>
      Effect.gen(function* () {
        const jobs = yield* positiveInt(values, "jobs", availableParallelism())
        const spawner = yield* Effect.try({
          try: () => spawnerProgram(ctx.spawner, ctx.env),
          catch: (e) =>
            new UsageError({
              message: (e as Error).message,
              hint: "Unset PIPELINE_SPAWNER to use the Node spawner.",
            }),
        })
        const gpus = yield* positiveInt(values, "gpus", detectGpus(ctx.env).count, 0)
        const selected = yield* selectStages(pipeline, {
          only: strs(values, "only"),
          downstream: strs(values, "downstream"),
        })
        const forceStages = strs(values, "force-stage")
        yield* Effect.forEach(forceStages, (s) => selectStages(pipeline, { only: [s] })) // unknown names are usage errors
        const json = values.json === true
        const artifacts = artifactsLive({ root: pipeline.root, stateDir, storeDir })
        if (values["dry-run"] === true) {
          const lock = yield* Effect.promise(() => readLock(lockFileFor(pipeline.file), parseCache))
          const plans = yield* planPipeline(pipeline, lock, selected).pipe(Effect.provide(artifacts))
          const words = { fresh: "up to date ", restorable: "would restore", stale: "would run  " } as const
          for (const [name, p] of plans)
            ctx.stderr.write(
              `${words[p.state]} ${name}${p.reasons.length ? `: ${p.reasons.join("; ")}` : ""}\n`,
            )
          if (json)
            ctx.stdout.write(
              `${JSON.stringify({ dry_run: true, stages: Object.fromEntries([...plans].map(([n, p]) => [n, { state: p.state, reasons: p.reasons }])) })}\n`,
            )
          return 0
        }
        const stderr = coalescing(ctx.stderr)
        const report = textReporter(stderr, ctx.tty)
        tuneForStages(process.versions.node)
        return yield* runPipeline(pipeline, {
          selected,
          jobs,
          gpus,
          force: values.force === true,
          forceStages: new Set(forceStages),
          keepGoing: values["keep-going"] === true,
          stateDir,
          parseCache,
          snapshot: snapshotKeyOf(pipeline.file, pipeline.root, storeDir, strs(values, "set"), gpus),
          stageRunner: ctx.stageRunner,
          argv: ctx.argv,
          env: ctx.env,
          versions: { pipeline: pkg.version, node: process.versions.node },
          onFinish: (o) => {
            if (json) ctx.stdout.write(`${JSON.stringify(summaryJson(o))}\n`)
          },
        }).pipe(
          Effect.provide(
            Layer.mergeAll(
              artifacts,
              stageRunnerLive(spawner, spawnersFor(jobs)),
              Layer.succeed(EventSink, { emit: report }),
            ),
          ),
          Effect.map((outcome) => (outcome.status === "succeeded" ? 0 : 1)),
          Effect.ensuring(Effect.sync(stderr.flush)),
        )
      }).pipe(reportStoreErrors(ctx)),
    ),
}
