/**
 * `with:` of a train stage, typed: the model to fine-tune, the task data, what trains (a freeze stage's
 * output), early stopping, the two forgetting mitigations (L2-SP, replay) and the shared training
 * settings. Light (see training-options.ts).
 */
import { optionError, type TrainingSettings, trainingSettings } from "./training-options.js"

/** `with.replay`. */
export interface ReplayOptions {
  readonly data: string
  readonly fraction: number
  readonly weight: number
  readonly maskRate: number
}

/** `with:` of a train stage. */
export interface TrainOptions extends TrainingSettings {
  readonly model: string
  readonly data: string
  readonly freeze: string | undefined
  readonly pooling: "cls" | "mean" | undefined
  readonly earlyStopping: { readonly patience: number; readonly minDelta: number } | undefined
  readonly l2sp: number
  readonly replay: ReplayOptions | undefined
}

/** Reads `with:` (already checked against the schema, defaults filled in). */
export const trainOptions = (args: Readonly<Record<string, unknown>>): TrainOptions => {
  const es = args.early_stopping as Record<string, unknown> | undefined
  const replay = args.replay as Record<string, unknown> | undefined
  const settings = trainingSettings(args, { learningRate: 1e-3, epochs: 3 })
  if (es !== undefined && settings.epochs < 2)
    throw optionError(
      "early_stopping is set but epochs is below 2",
      "Early stopping compares epochs: raise epochs, or remove early_stopping.",
    )
  return {
    ...settings,
    model: String(args.model).replace(/\/+$/, ""),
    data: String(args.data).replace(/\/+$/, ""),
    freeze: typeof args.freeze === "string" ? args.freeze.replace(/\/+$/, "") : undefined,
    pooling: args.pooling === "cls" || args.pooling === "mean" ? args.pooling : undefined,
    earlyStopping:
      es === undefined
        ? undefined
        : { patience: Number(es.patience ?? 2), minDelta: Number(es.min_delta ?? 0) },
    l2sp: typeof args.l2sp === "number" ? args.l2sp : 0,
    replay:
      replay === undefined
        ? undefined
        : {
            data: String(replay.data).replace(/\/+$/, ""),
            fraction: Number(replay.fraction ?? 0.25),
            weight: Number(replay.weight ?? 1),
            maskRate: Number(replay.mask_rate ?? 0.15),
          },
  }
}
