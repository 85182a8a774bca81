/**
 * `findPipelineFile` for the Effect-based commands: a missing pipeline is a `UsageError`. The plain
 * functions live in `pipeline-path.ts`.
 */
import { Effect } from "effect"
import { UsageError } from "./errors.js"
import { findPipelineFile } from "./pipeline-path.js"

export { findProjectRoot, listPipelines, lockFileFor, storeDirFor } from "./pipeline-path.js"

/** The absolute path of the pipeline file an argument names (see `findPipelineFile`). */
export const resolvePipelineFile = (
  arg: string | undefined,
  cwd: string,
): Effect.Effect<string, UsageError> =>
  Effect.suspend(() => {
    const found = findPipelineFile(arg, cwd)
    return "file" in found ? Effect.succeed(found.file) : Effect.fail(new UsageError(found))
  })
