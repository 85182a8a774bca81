/**
 * The closed union of failures. Invalid-input errors carry located diagnostics and map to exit code 2;
 * run-time errors map to exit code 1. The CLI handles them with `catchTags`.
 */
import { Data } from "effect"

/** One located problem in a file: where, what, and one sentence on how to fix it. */
export interface Diagnostic {
  /** the file as the user named it (relative to the working directory where possible) */
  readonly file: string
  readonly line: number
  readonly column: number
  readonly endLine: number
  readonly endColumn: number
  readonly message: string
  /** one sentence: what to do */
  readonly hint: string
}

/** The pipeline file is not valid YAML. */
export class PipelineSyntaxError extends Data.TaggedError("PipelineSyntaxError")<{
  readonly diagnostics: ReadonlyArray<Diagnostic>
}> {}

/** The pipeline (or a built-in stage's `with:`) does not match its JSON Schema. */
export class SchemaViolation extends Data.TaggedError("SchemaViolation")<{
  readonly diagnostics: ReadonlyArray<Diagnostic>
}> {}

/** The pipeline is well-formed but says something impossible: unknown param or stage, overlapping outs, ... */
export class SpecError extends Data.TaggedError("SpecError")<{
  readonly diagnostics: ReadonlyArray<Diagnostic>
}> {}

/** The stages depend on each other in a circle; `cycle` is `[a, b, c, a]`. */
export class CycleDetected extends Data.TaggedError("CycleDetected")<{
  readonly cycle: ReadonlyArray<string>
  readonly diagnostics: ReadonlyArray<Diagnostic>
}> {}

/** Bad command-line usage (unknown flag, bad `--set`, missing pipeline file). */
export class UsageError extends Data.TaggedError("UsageError")<{
  readonly message: string
  readonly hint: string
}> {}

/** Everything that makes a pipeline invalid before anything runs: exit code 2. */
export type PipelineInvalid = PipelineSyntaxError | SchemaViolation | SpecError | CycleDetected | UsageError

/** A store object's content does not match its digest. */
export class StoreCorrupt extends Data.TaggedError("StoreCorrupt")<{
  readonly digest: string
  readonly path: string
}> {}

/** A file-system operation on the store or the workspace failed. */
export class StoreIOError extends Data.TaggedError("StoreIOError")<{
  readonly op: string
  readonly path: string
  readonly message: string
}> {}

/** Another run holds the project lock. */
export class ProjectLocked extends Data.TaggedError("ProjectLocked")<{
  readonly pid: number
  readonly startedAt: string
  readonly lockFile: string
  /** the holder's machine, when it is not this one */
  readonly host?: string
}> {}

/** Report an impossible case in an exhaustive switch. */
export const unreachable = (x: never): never => {
  throw new Error(`unreachable: ${JSON.stringify(x)}`)
}
