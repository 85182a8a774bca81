/**
 * The project root for commands that work on the project rather than on one pipeline (`runs`, `gc`,
 * `verify`, `recover`): `--root`, else `PIPELINE_ROOT`, else the root of `./pipeline.yaml`'s project, else the
 * current directory's nearest project.
 */
import { join, resolve } from "node:path"
import { Effect } from "effect"
import { findProjectRoot, resolvePipelineFile } from "../pipeline-file.js"
import type { CliContext, OptionSpec, Values } from "./context.js"
import { str } from "./options.js"

export const rootOption: Readonly<Record<string, OptionSpec>> = {
  root: {
    type: "string",
    placeholder: "DIR",
    help: "project root (default: the current directory's project)",
  },
}

export const projectRootOf = (values: Values, ctx: CliContext): Effect.Effect<string> =>
  Effect.gen(function* () {
    const explicit = str(values, "root") ?? ctx.env.PIPELINE_ROOT
    if (explicit) return resolve(ctx.cwd, explicit)
    const file = yield* resolvePipelineFile(undefined, ctx.cwd).pipe(Effect.option)
    return findProjectRoot(file._tag === "Some" ? file.value : join(ctx.cwd, "pipeline.yaml"), undefined)
  })
