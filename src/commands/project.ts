/**
 * Loading the pipeline a command names, and where its project keeps its state. Invalid pipelines are
 * rendered here (human text on stderr, the JSON error object on stdout with `--json`) and become exit 2.
 */
import { join, resolve } from "node:path"
import { Effect } from "effect"
import { invalidToJson, renderInvalid } from "../diagnostic.js"
import { type PipelineInvalid, UsageError } from "../errors.js"
import type { Pipeline } from "../model.js"
import { type ParseCache, parseCacheAt } from "../parse-cache.js"
import { findProjectRoot, resolvePipelineFile, storeDirFor } from "../pipeline-file.js"
import { loadPipeline } from "../spec.js"
import type { CliContext, Values } from "./context.js"
import { str, strs } from "./options.js"

/** A loaded pipeline and its project's folders. */
export interface Project {
  readonly pipeline: Pipeline
  /** `<root>/.pipeline`: stat cache, run lock, saved-outs log */
  readonly stateDir: string
  /** the artifact store */
  readonly storeDir: string
  /** parsed YAML (pipeline, params and lock files) reused while their text is unchanged */
  readonly parseCache: ParseCache
}

/** Where the store is: `--store`, else `PIPELINE_STORE`, else `<root>/.pipeline/store`. */
export const storeDirOf = (root: string, values: Values, ctx: CliContext): string =>
  storeDirFor(root, str(values, "store") ?? ctx.env.PIPELINE_STORE, ctx.cwd)

/** Report an invalid pipeline and give the exit code 2. */
export const reportInvalid = (e: PipelineInvalid, ctx: CliContext, json: boolean): number => {
  if (json) ctx.stdout.write(`${JSON.stringify(invalidToJson(e))}\n`)
  ctx.stderr.write(`${renderInvalid(e)}\n`)
  return 2
}

/**
 * Load the pipeline named by the first positional (or `pipeline.yaml`) and hand it to `use`; an invalid
 * pipeline is reported and `use` is not called.
 */
export const withProject = <E, R>(
  values: Values,
  positionals: ReadonlyArray<string>,
  ctx: CliContext,
  use: (project: Project) => Effect.Effect<number, E, R>,
): Effect.Effect<number, E | UsageError, R> =>
  Effect.gen(function* () {
    if (positionals.length > 1) {
      return yield* new UsageError({
        message: `expected at most one pipeline, got ${positionals.length}: ${positionals.join(" ")}`,
        hint: "Name one pipeline file (or a name under pipelines/); pass stages with --only or --downstream.",
      })
    }
    const file = yield* resolvePipelineFile(positionals[0], ctx.cwd)
    const rootArg = str(values, "root") ?? ctx.env.PIPELINE_ROOT
    const root = findProjectRoot(file, rootArg === undefined ? undefined : resolve(ctx.cwd, rootArg))
    const parseCache = parseCacheAt(join(root, ".pipeline", "cache", "parsed"))
    const pipeline = yield* loadPipeline({ file, cwd: ctx.cwd, root, sets: strs(values, "set"), parseCache })
    return {
      pipeline,
      stateDir: join(pipeline.root, ".pipeline"),
      storeDir: storeDirOf(pipeline.root, values, ctx),
      parseCache,
    }
  }).pipe(
    Effect.matchEffect({
      onFailure: (e: PipelineInvalid) => Effect.succeed(reportInvalid(e, ctx, values.json === true)),
      onSuccess: (project) => (typeof project === "number" ? Effect.succeed(project) : use(project)),
    }),
  )
