/**
 * The failures of data-parallel training.
 */
import { Data } from "effect"

/** A batch the trainer cannot split or score: wrong lengths for its rows, sequence length or loss. */
export class BatchInvalid extends Data.TaggedError("BatchInvalid")<{
  readonly problems: ReadonlyArray<string>
  readonly message: string
}> {}

/**
 * A worker failed: it did not start (bad configuration, selectors, weights, backend), a request threw in it, or
 * it exited. The trainer is unusable afterwards (its replicas may disagree): close it and start again.
 */
export class ReplicaFailed extends Data.TaggedError("ReplicaFailed")<{
  /** the worker's rank */
  readonly worker: number
  readonly message: string
}> {}
