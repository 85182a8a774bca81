/**
 * Where a model lives in a stage's out folder, and loading one given in `with:`. A training stage
 * (`pretrain`, `train`) writes its model to `<out>/model/` (`saveBert`: model.json + weight shards);
 * `with.model` may name that folder or the stage's out folder above it.
 */
import { access } from "node:fs/promises"
import { join } from "node:path"
import { StageInputError } from "../../stages/api.js"
import { type LoadedBert, loadBert, MODEL_JSON } from "../model/index.js"

/** The model's sub-folder in a training stage's out folder. */
export const MODEL_DIR = "model"

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  )

/** The folder holding model.json: `dir` itself or `dir/model`; errors name it as `shown`. */
export const modelFolder = async (dir: string, what: string, shown = dir): Promise<string> => {
  if (await exists(join(dir, MODEL_JSON))) return dir
  if (await exists(join(dir, MODEL_DIR, MODEL_JSON))) return join(dir, MODEL_DIR)
  throw new StageInputError(
    `${what}: ${shown} holds no model (no ${MODEL_JSON} in it or in its ${MODEL_DIR}/ folder)\n   Point it at a pretrain or train stage's out folder, e.g. \${stages.pretrain.outs[0]}.`,
  )
}

/** Load the model in `dir` (see `modelFolder`). */
export const loadModelFrom = async (dir: string, what: string): Promise<LoadedBert> => {
  const folder = await modelFolder(dir, what)
  try {
    return await loadBert(folder)
  } catch (e) {
    throw new StageInputError(
      `${what}: cannot load the model in ${folder}: ${e instanceof Error ? e.message : String(e)}\n   Rerun the stage that wrote it (pipeline run --force-stage <name>).`,
    )
  }
}
