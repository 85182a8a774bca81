/**
 * The closed vocabularies of statuses, shared word for word by the CLI, the JSON output and the run record.
 */

/** A stage's status in a run. */
export type StageStatus =
  /** waiting for its upstream stages or for a resource slot */
  | "pending"
  /** its command is executing */
  | "running"
  /** its command executed and succeeded; its outs were saved to the store */
  | "ran"
  /** its outputs were already in place and fresh: nothing was done */
  | "cached"
  /** its outputs were put back from the store; the command did not run */
  | "restored"
  /** its command failed (or wrote no declared out, or timed out); nothing of it entered the store */
  | "failed"
  /** never started: an upstream stage failed, or the run stopped starting stages */
  | "skipped"
  /** interrupted while running (Ctrl-C, SIGTERM) */
  | "cancelled"

/** A run's status. */
export type RunStatus = "running" | "succeeded" | "failed" | "cancelled"

/** What `pipeline status` says of a stage. */
export type Freshness =
  /** running now would do nothing */
  | "fresh"
  /** stale, but its outputs for the current inputs are in the run cache: a run restores them */
  | "restorable"
  /** a run would execute it */
  | "stale"

/** Terminal statuses that let downstream stages go on. */
export const isSuccess = (s: StageStatus): boolean => s === "ran" || s === "cached" || s === "restored"
