/**
 * The training loop every training stage shares: epochs of seeded shuffled batches, a learning-rate
 * schedule with warmup, gradient clipping, AdamW, validation after each epoch, early stopping on the
 * validation loss (keeping the best weights, as Hugging Face's `load_best_model_at_end`), and a checkpoint
 * after each epoch from which an interrupted run resumes where it stopped.
 *
 * Determinism: batch order, masking, replay draws and dropout are derived from `seed` and the epoch or step
 * number alone (random.ts `deriveSeed`), never from a generator's running state, so a resumed run takes
 * exactly the steps an uninterrupted one would have taken.
 */
import * as tf from "@tensorflow/tfjs"
import type { BertModel } from "../model/index.js"
import { AdamW } from "./adamw.js"
import { batchIndices } from "./batches.js"
import type { Checkpointer } from "./checkpoint.js"
import { clipByGlobalNorm } from "./clip.js"
import { deriveSeed, permutation, seededRng } from "./random.js"
import { learningRate, type ScheduleKind } from "./schedule.js"

/** What is trained on: the loss of a batch, and the validation measures. */
export interface Objective {
  /** rows in the training split */
  readonly rows: number
  /** the loss of the training rows at `indices`, at step `step` (called inside `tf.variableGrads`) */
  readonly loss: (indices: Int32Array, step: number) => tf.Scalar
  /** validation measures (dropout off); must include `loss` */
  readonly validate?: () => Promise<Validation>
}

/** The loop's settings. */
export interface LoopSettings {
  readonly epochs: number
  readonly batchSize: number
  readonly seed: number
  readonly lr: number
  readonly schedule: ScheduleKind
  readonly warmupSteps: number
  readonly weightDecay: number
  /** max global gradient norm; 0 turns clipping off */
  readonly clipNorm: number
  /** stop after `patience` epochs without the validation loss improving by more than `minDelta` */
  readonly earlyStopping?: { readonly patience: number; readonly minDelta: number }
  /** at most this many steps per epoch (a quick run); default: the whole split */
  readonly maxStepsPerEpoch?: number
}

/** One step's record in the training log. */
export interface StepRecord {
  readonly type: "step"
  readonly epoch: number
  readonly step: number
  readonly loss: number
  readonly lr: number
  readonly grad_norm: number
}

/** One epoch's record in the training log. */
export interface EpochRecord {
  readonly type: "epoch"
  readonly epoch: number
  readonly step: number
  readonly train_loss: number
  readonly seconds: number
  readonly validation?: Validation
}

/** Validation measures after an epoch: at least the loss. */
export type Validation = Readonly<Record<string, number>> & { readonly loss: number }

/** Where the loop stands after an epoch: what a checkpoint saves. */
export interface LoopState {
  /** epochs completed */
  readonly epoch: number
  readonly step: number
  readonly log: ReadonlyArray<StepRecord | EpochRecord>
  readonly best: { readonly epoch: number; readonly loss: number } | null
  /** epochs since the best one */
  readonly sinceBest: number
  readonly stoppedEarly: boolean
}

/** What the loop reports as it goes. */
export interface LoopHooks {
  readonly onStep?: (r: StepRecord, totalSteps: number) => void | Promise<void>
  readonly onEpoch?: (r: EpochRecord) => void
  /** after the resume point is known: the epoch it resumed after (0: a fresh start) */
  readonly onStart?: (resumedAfterEpoch: number, totalSteps: number) => void
  readonly checkpoint?: Checkpointer
}

/** The outcome: the log and how the run ended. */
export interface LoopResult extends LoopState {
  readonly totalSteps: number
  readonly resumedAfterEpoch: number
}

const stepsPerEpoch = (o: Objective, s: LoopSettings): number => {
  const full = Math.ceil(o.rows / s.batchSize)
  return s.maxStepsPerEpoch === undefined ? full : Math.min(full, s.maxStepsPerEpoch)
}

/** Train `trainable` (parameters of `model` by name) on `objective`. */
export const trainLoop = async (
  model: BertModel,
  trainable: ReadonlyMap<string, tf.Variable>,
  objective: Objective,
  settings: LoopSettings,
  hooks: LoopHooks = {},
): Promise<LoopResult> => {
  const perEpoch = stepsPerEpoch(objective, settings)
  const totalSteps = perEpoch * settings.epochs
  const optimizer = new AdamW({ weightDecay: settings.weightDecay })
  const schedule = {
    kind: settings.schedule,
    lr: settings.lr,
    warmupSteps: settings.warmupSteps,
    totalSteps,
  }
  let state: LoopState = { epoch: 0, step: 0, log: [], best: null, sinceBest: 0, stoppedEarly: false }
  // the best epoch's weights, when early stopping keeps them
  let best: Map<string, tf.Tensor> | undefined
  const keepBest = () => {
    for (const t of best?.values() ?? []) t.dispose()
    best = new Map([...trainable].map(([n, v]) => [n, v.clone()]))
  }
  try {
    const resumed = await hooks.checkpoint?.load(model, optimizer)
    if (resumed !== undefined) {
      state = resumed.state
      best = resumed.best
    }
    const resumedAfterEpoch = state.epoch
    hooks.onStart?.(resumedAfterEpoch, totalSteps)
    const vars = [...trainable.values()]
    const names = [...trainable.keys()]
    while (state.epoch < settings.epochs && !state.stoppedEarly) {
      const epoch = state.epoch + 1
      const started = performance.now()
      const order = permutation(objective.rows, seededRng(deriveSeed(settings.seed, `shuffle/${epoch}`)))
      const batches = batchIndices(order, settings.batchSize).slice(0, perEpoch)
      const log = [...state.log]
      let step = state.step
      let lossSum = 0
      for (const indices of batches) {
        const { value, grads } = tf.variableGrads(() => objective.loss(indices, step), vars)
        const named: Record<string, tf.Tensor> = {}
        // A parameter the loss does not reach (the other head) has no gradient and is left alone, as
        // torch.optim skips parameters whose .grad is None.
        for (const [i, v] of vars.entries()) {
          const g = grads[v.name]
          if (g != null) named[names[i]!] = g
        }
        const clipped = clipByGlobalNorm(named, settings.clipNorm)
        tf.dispose(Object.values(grads).filter((g) => g != null))
        const lr = learningRate(schedule, step)
        optimizer.apply(trainable, clipped.grads, lr)
        tf.dispose(Object.values(clipped.grads))
        const loss = (await value.data())[0]!
        value.dispose()
        if (!Number.isFinite(loss))
          throw new Error(
            `the training loss became ${loss} at step ${step + 1} (epoch ${epoch}); lower the learning rate or set clip_norm`,
          )
        step += 1
        lossSum += loss
        const record: StepRecord = { type: "step", epoch, step, loss, lr, grad_norm: clipped.norm }
        log.push(record)
        await hooks.onStep?.(record, totalSteps)
      }
      const validation = objective.validate === undefined ? undefined : await objective.validate()
      const epochRecord: EpochRecord = {
        type: "epoch",
        epoch,
        step,
        train_loss: lossSum / Math.max(1, batches.length),
        seconds: (performance.now() - started) / 1000,
        ...(validation === undefined ? {} : { validation }),
      }
      log.push(epochRecord)
      hooks.onEpoch?.(epochRecord)
      let { best: bestSoFar, sinceBest } = state
      let stoppedEarly = false
      if (validation !== undefined) {
        const minDelta = settings.earlyStopping?.minDelta ?? 0
        if (bestSoFar === null || validation.loss < bestSoFar.loss - minDelta) {
          bestSoFar = { epoch, loss: validation.loss }
          sinceBest = 0
          if (settings.earlyStopping !== undefined) keepBest()
        } else {
          sinceBest += 1
          stoppedEarly = settings.earlyStopping !== undefined && sinceBest >= settings.earlyStopping.patience
        }
      }
      state = { epoch, step, log, best: bestSoFar, sinceBest, stoppedEarly }
      await hooks.checkpoint?.save(model, optimizer, state, best)
    }
    // Early stopping ends with the best epoch's weights, not the last.
    if (best !== undefined && state.best !== null && state.best.epoch !== state.epoch)
      for (const [n, t] of best) trainable.get(n)?.assign(t)
    return { ...state, totalSteps, resumedAfterEpoch }
  } finally {
    optimizer.dispose()
    for (const t of best?.values() ?? []) t.dispose()
  }
}
