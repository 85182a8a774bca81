/**
 * The interface of a built-in stage kind's implementation, as the stage runner calls it. A kind reads its
 * deps and `with:`, writes exactly its declared outs, and reports progress through `progress`.
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
  /** send a progress or metrics object to the orchestrator (the events channel) */
  readonly progress: (data: Readonly<Record<string, unknown>>) => void
}

/** A built-in kind's implementation: resolves when its outs are written; throws (with a clear message) on failure. */
export type StageImplementation = (ctx: StageRunContext) => Promise<void>

/** An error the runner prints without a stack: bad data found at run time. */
export class StageInputError extends Error {
  override readonly name = "StageInputError"
}
