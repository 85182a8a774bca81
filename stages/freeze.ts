/**
 * `freeze`: chooses which parameters a fine-tuning run trains (`trainable_layers`, name patterns,
 * embeddings on or off) and reports trainable against total parameter counts, overall and per part.
 * Writes `freeze.json`:
 *
 *   { "format": "pipeline-freeze/1", "num_hidden_layers": 2, "selectors": [...], "frozen": [...],
 *     "trainable": [parameter names], "counts": { "total", "trainable", "share", "by_part": {...} } }
 *
 * A train stage reads it through `with.freeze`. The counts are those of the model as it will be trained
 * (the task head sized for two labels here; the train stage reports its own exact counts).
 */
import { mkdir, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { countParams, disposeBert, ParamSelectorInvalid, selectModelParams } from "../src/model/index.js"
import { loadModelFrom } from "../src/train/model-dir.js"
import { type StageImplementation, StageInputError } from "./api.js"
import { freezeOptions, trainableSelectors } from "./freeze-options.js"

/** The format name of `freeze.json`. */
export const FREEZE_FORMAT = "pipeline-freeze/1"

/** `freeze.json`. */
export interface FreezeFile {
  readonly format: typeof FREEZE_FORMAT
  readonly num_hidden_layers: number
  readonly selectors: ReadonlyArray<string>
  readonly frozen: ReadonlyArray<string>
  readonly trainable: ReadonlyArray<string>
  readonly counts: {
    readonly total: number
    readonly trainable: number
    readonly share: number
    readonly by_part: Readonly<Record<string, { readonly total: number; readonly trainable: number }>>
  }
}

export const run: StageImplementation = async (ctx) => {
  const o = freezeOptions(ctx.args)
  tf.env().set("PROD", true)
  await tf.setBackend("cpu")
  const { model } = await loadModelFrom(resolve(ctx.root, o.model), "with.model")
  try {
    const layers = model.config.num_hidden_layers
    if (o.trainableLayers !== undefined && Math.abs(o.trainableLayers) > layers)
      throw new StageInputError(
        `with.trainable_layers: ${o.trainableLayers}, but the model has ${layers} encoder layers\n   Use a number from -${layers} to ${layers}, or "all".`,
      )
    const selectors = trainableSelectors(o, layers)
    let names: string[]
    try {
      const frozen = new Set(o.frozen.length === 0 ? [] : selectModelParams(model, o.frozen))
      names = selectModelParams(model, selectors).filter((n) => !frozen.has(n))
    } catch (e) {
      if (e instanceof ParamSelectorInvalid) throw new StageInputError(`with: ${e.message}`)
      throw e
    }
    const chosen = new Set(names)
    for (const [n, v] of model.params) v.trainable = chosen.has(n)
    const counts = countParams(model)
    const file: FreezeFile = {
      format: FREEZE_FORMAT,
      num_hidden_layers: layers,
      selectors,
      frozen: o.frozen,
      trainable: names,
      counts: {
        total: counts.total,
        trainable: counts.trainable,
        share: Number((counts.trainable / counts.total).toFixed(4)),
        by_part: counts.byPart,
      },
    }
    const outDir = ctx.outs[0]!
    await mkdir(outDir, { recursive: true })
    await writeFile(join(outDir, "freeze.json"), `${JSON.stringify(file, null, 2)}\n`)
    ctx.progress({ trainable_params: counts.trainable, total_params: counts.total, share: file.counts.share })
  } finally {
    disposeBert(model)
  }
}
