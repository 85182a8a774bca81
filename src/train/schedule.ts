/**
 * Learning-rate schedules with linear warmup, as Hugging Face's `get_scheduler` defines them: during the
 * first `warmupSteps` the rate rises linearly from 0 to `lr`; after that it is constant, falls linearly to
 * 0 at `totalSteps`, or follows half a cosine down to 0 at `totalSteps`.
 */

/** The schedule's shape after warmup. */
export type ScheduleKind = "constant" | "linear" | "cosine"

/** A schedule's settings. */
export interface Schedule {
  readonly kind: ScheduleKind
  /** the peak rate */
  readonly lr: number
  readonly warmupSteps: number
  readonly totalSteps: number
}

/** The learning rate for the step with 0-based index `step`. */
export const learningRate = (s: Schedule, step: number): number => {
  if (step < s.warmupSteps) return (s.lr * (step + 1)) / (s.warmupSteps + 1)
  if (s.kind === "constant") return s.lr
  const span = Math.max(1, s.totalSteps - s.warmupSteps)
  const progress = Math.min(1, (step - s.warmupSteps) / span)
  return s.kind === "linear" ? s.lr * (1 - progress) : s.lr * 0.5 * (1 + Math.cos(Math.PI * progress))
}

/** Warmup steps from a ratio of the total (Hugging Face's `warmup_ratio`). */
export const warmupFromRatio = (ratio: number, totalSteps: number): number => Math.ceil(ratio * totalSteps)
