/**
 * The settings `pretrain` and `train` share (epochs, batch size, learning rate and its schedule, weight
 * decay, clipping, seed), typed, with what their schemas cannot express checked. Light, so the pipeline
 * loader runs the same checks before anything runs.
 */
import type { ScheduleKind } from "../src/train/schedule.js"
import { StageInputError } from "./api.js"

/** The shared training settings of `with:`. */
export interface TrainingSettings {
  readonly epochs: number
  readonly batchSize: number
  readonly learningRate: number
  readonly schedule: ScheduleKind
  /** exactly one of the two is set */
  readonly warmupSteps: number | undefined
  readonly warmupRatio: number | undefined
  readonly weightDecay: number
  readonly clipNorm: number
  readonly seed: number
  readonly maxStepsPerEpoch: number | undefined
  /** dropout override for the encoder (hidden and attention); undefined keeps the model's */
  readonly dropout: number | undefined
}

export const optionError = (problem: string, hint: string) =>
  new StageInputError(`with: ${problem}\n   ${hint}`)

const num = (v: unknown, fallback: number): number => (typeof v === "number" ? v : fallback)
const optNum = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined)

/** Reads the shared settings (already checked against the schema, defaults filled in). */
export const trainingSettings = (
  args: Readonly<Record<string, unknown>>,
  defaults: { readonly learningRate: number; readonly epochs: number },
): TrainingSettings => {
  if (args.warmup_steps !== undefined && args.warmup_ratio !== undefined)
    throw optionError(
      'both "warmup_steps" and "warmup_ratio" are set',
      "Give the warmup as a number of steps or as a share of all steps: remove one of them.",
    )
  return {
    epochs: num(args.epochs, defaults.epochs),
    batchSize: num(args.batch_size, 32),
    learningRate: num(args.learning_rate, defaults.learningRate),
    schedule: (args.schedule as ScheduleKind | undefined) ?? "linear",
    warmupSteps: optNum(args.warmup_steps),
    warmupRatio: args.warmup_steps === undefined ? num(args.warmup_ratio, 0.1) : undefined,
    weightDecay: num(args.weight_decay, 0.01),
    clipNorm: num(args.clip_norm, 1),
    seed: num(args.seed, 0),
    maxStepsPerEpoch: optNum(args.max_steps_per_epoch),
    dropout: optNum(args.dropout),
  }
}
