/**
 * What `pretrain` and `train` share at run time: the compute backend, the loop with its checkpoints in the
 * stage's scratch folder and its progress events, and the outputs every training stage writes:
 *
 *   model/        the model (`saveBert`: model.json + weight shards), with metadata
 *   log.jsonl     a line per step (`{"type":"step","epoch","step","loss","lr","grad_norm"}`) and per epoch
 *                 (`{"type":"epoch","epoch","step","train_loss","seconds","validation":{...}}`)
 *   loss.svg      the loss curve
 *   metrics.json  what the stage reports (final validation measures, steps, time, backend, parameters)
 */
import { copyFile, mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import type * as tf from "@tensorflow/tfjs"
import { type BackendChoice, initBackend, releaseBackend } from "../src/compute/backend.js"
import { type BertModel, countParams, saveBert } from "../src/model/index.js"
import { folderCheckpointer } from "../src/train/checkpoint.js"
import { lossCurveSvg } from "../src/train/curve-svg.js"
import { type LoopResult, type Objective, trainLoop } from "../src/train/loop.js"
import { MODEL_DIR } from "../src/train/model-dir.js"
import { warmupFromRatio } from "../src/train/schedule.js"
import type { StageRunContext } from "./api.js"
import type { TrainingSettings } from "./training-options.js"

/** Start the fastest backend here; the caller releases it with `releaseBackend`. */
export const startCompute = async (ctx: StageRunContext): Promise<BackendChoice> => {
  const choice = await initBackend()
  ctx.progress({ backend: choice.name })
  return choice
}

export { releaseBackend }

const round = (x: number, digits = 4) => Number(x.toFixed(digits))

/**
 * Run the training loop for a stage: checkpoints under the scratch folder (resumed when the same stage
 * was interrupted before), a progress event per step and per epoch.
 */
export const runLoop = async (
  ctx: StageRunContext,
  model: BertModel,
  trainable: ReadonlyMap<string, tf.Variable>,
  objective: Objective,
  s: TrainingSettings,
  identity: unknown,
): Promise<LoopResult & { readonly seconds: number; readonly examplesPerSecond: number }> => {
  const perEpoch = Math.min(
    Math.ceil(objective.rows / s.batchSize),
    s.maxStepsPerEpoch ?? Number.POSITIVE_INFINITY,
  )
  const total = perEpoch * s.epochs
  const started = performance.now()
  let stepsHere = 0
  const result = await trainLoop(
    model,
    trainable,
    objective,
    {
      epochs: s.epochs,
      batchSize: s.batchSize,
      seed: s.seed,
      lr: s.learningRate,
      schedule: s.schedule,
      warmupSteps: s.warmupSteps ?? warmupFromRatio(s.warmupRatio ?? 0, total),
      weightDecay: s.weightDecay,
      clipNorm: s.clipNorm,
      ...(s.maxStepsPerEpoch === undefined ? {} : { maxStepsPerEpoch: s.maxStepsPerEpoch }),
    },
    {
      checkpoint: folderCheckpointer(join(ctx.scratch, "checkpoints"), identity),
      onStart: (after) => {
        if (after > 0) ctx.progress({ resumed: `after epoch ${after} (checkpoint)` })
      },
      onStep: async (r) => {
        stepsHere += 1
        // Let the event loop run: the events stream (fd 3) only flushes between macrotasks, and a loop of
        // microtask-only awaits would deliver every progress event at the end.
        await new Promise((resolve) => setImmediate(resolve))
        ctx.progress({
          step: r.step,
          total,
          epoch: r.epoch,
          loss: round(r.loss),
          lr: Number(r.lr.toPrecision(3)),
        })
      },
      onEpoch: (e) =>
        ctx.progress({
          epoch: e.epoch,
          train_loss: round(e.train_loss),
          ...Object.fromEntries(Object.entries(e.validation ?? {}).map(([k, v]) => [`val_${k}`, round(v)])),
        }),
    },
  )
  const seconds = (performance.now() - started) / 1000
  return { ...result, seconds, examplesPerSecond: (stepsHere * s.batchSize) / Math.max(seconds, 1e-9) }
}

/** What a training stage hands `finishTraining`. */
export interface Finished {
  readonly outDir: string
  readonly model: BertModel
  readonly result: LoopResult & { readonly seconds: number; readonly examplesPerSecond: number }
  /** the loss curve's title */
  readonly title: string
  /** kept with the model (`task`, `labels`, ...) */
  readonly metadata: Readonly<Record<string, unknown>>
  /** the kind's own fields of metrics.json, first */
  readonly metrics: Readonly<Record<string, unknown>>
  /** the final validation measures, if there is a validation split */
  readonly validation: Readonly<Record<string, number>> | undefined
  readonly choice: BackendChoice
  /** the tokenizer.json of the data the model was trained on, copied beside the model */
  readonly tokenizer: string
}

/** Write a training stage's outputs (see the file comment) and report its final validation measures. */
export const finishTraining = async (ctx: StageRunContext, f: Finished): Promise<void> => {
  const { outDir, model, result } = f
  await mkdir(outDir, { recursive: true })
  await saveBert(model, join(outDir, MODEL_DIR), { metadata: { ...f.metadata, steps: result.step } })
  await writeFile(
    join(outDir, "log.jsonl"),
    result.log.map((r) => JSON.stringify(r)).join("\n") + (result.log.length > 0 ? "\n" : ""),
  )
  await writeFile(join(outDir, "loss.svg"), lossCurveSvg(result.log, f.title))
  const counts = countParams(model)
  const metrics = {
    ...f.metrics,
    epochs: result.epoch,
    steps: result.step,
    best_epoch: result.best?.epoch ?? null,
    stopped_early: result.stoppedEarly,
    seconds: Number(result.seconds.toFixed(2)),
    examples_per_second: Number(result.examplesPerSecond.toFixed(1)),
    validation: f.validation ?? null,
    parameters: { total: counts.total, trainable: counts.trainable },
    backend: f.choice.name,
    backend_versions: f.choice.versions,
  }
  await writeFile(join(outDir, "metrics.json"), `${JSON.stringify(metrics, null, 2)}\n`)
  await copyFile(f.tokenizer, join(outDir, "tokenizer.json"))
  if (f.validation !== undefined)
    ctx.progress(Object.fromEntries(Object.entries(f.validation).map(([k, v]) => [`val_${k}`, round(v)])))
}
