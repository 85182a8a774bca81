/**
 * The interface of a stage kind's implementation (built-in, or a user's kind module), as the stage runner
 * calls it. A kind reads its deps and `with:`, writes exactly its declared outs, and reports progress
 * through `progress`.
 */

/** What a running stage is given. */
export interface StageRunContext {
  /** absolute project root; the working directory */
  readonly root: string
  /** the stage's `with:` after interpolation and validation */
  readonly args: Readonly<Record<string, unknown>>
  /** the stage's outs, absolute, in declaration order (the kind's own outs come after the user's) */
  readonly outs: ReadonlyArray<string>
  /** the stage's deps, absolute */
  readonly deps: ReadonlyArray<string>
  /**
   * the stage's scratch folder, absolute (`.pipeline/scratch/<fingerprint>/`, also in `PIPELINE_SCRATCH`):
   * it exists when the stage starts, survives a failed or interrupted attempt (a rerun with the same
   * fingerprint finds what it left there, such as checkpoints to resume from) and is removed once the stage
   * succeeds
   */
  readonly scratch: string
  /** the stage's fingerprint (SHA-256, hex): what its outs will be stored under */
  readonly fingerprint: string
  /** send a progress or metrics object to the orchestrator (the events channel) */
  readonly progress: (data: Readonly<Record<string, unknown>>) => void
}

/** A built-in kind's implementation: resolves when its outs are written; throws (with a clear message) on failure. */
export type StageImplementation = (ctx: StageRunContext) => Promise<void>

/** An error the runner prints without a stack: bad data found at run time. */
export class StageInputError extends Error {
  override readonly name = "StageInputError"
}
