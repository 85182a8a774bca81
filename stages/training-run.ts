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
import { mkdir, writeFile } from "node:fs/promises"
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

/** Write a training stage's outputs (see the file comment) into `outDir`. */
export const writeTrainingOutputs = async (
  outDir: string,
  model: BertModel,
  log: LoopResult["log"],
  title: string,
  metadata: Readonly<Record<string, unknown>>,
  metrics: Readonly<Record<string, unknown>>,
): Promise<void> => {
  await mkdir(outDir, { recursive: true })
  await saveBert(model, join(outDir, MODEL_DIR), { metadata })
  await writeFile(
    join(outDir, "log.jsonl"),
    log.map((r) => JSON.stringify(r)).join("\n") + (log.length > 0 ? "\n" : ""),
  )
  await writeFile(join(outDir, "loss.svg"), lossCurveSvg(log, title))
  const counts = countParams(model)
  await writeFile(
    join(outDir, "metrics.json"),
    `${JSON.stringify({ ...metrics, parameters: { total: counts.total, trainable: counts.trainable } }, null, 2)}\n`,
  )
}
