/**
 * Checkpoints of a training run, for resuming after an interruption. They live in the stage's scratch
 * folder (`.pipeline/scratch/<fingerprint>/`, kept when a run fails or is interrupted, removed when the
 * stage succeeds), never in the store: only the finished stage's outs enter the store.
 *
 * After each epoch the loop writes a new folder `ckpt-<epoch>/` (the model as `saveBert` writes it, the
 * optimizer's moments, the best weights so far when early stopping keeps them, and the loop's state), then
 * points `latest.json` at it by an atomic rename, then removes older folders. A crash at any moment leaves
 * `latest.json` naming a complete checkpoint (or none).
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { assignParams, type BertModel, disposeBert, loadBert, saveBert } from "../model/index.js"
import type { AdamW } from "./adamw.js"
import type { LoopState } from "./loop.js"

/** Saves and restores a run's progress. */
export interface Checkpointer {
  /** restore the model and optimizer from the latest checkpoint; undefined when there is none */
  readonly load: (
    model: BertModel,
    optimizer: AdamW,
  ) => Promise<{ readonly state: LoopState; readonly best: Map<string, tf.Tensor> | undefined } | undefined>
  readonly save: (
    model: BertModel,
    optimizer: AdamW,
    state: LoopState,
    best: ReadonlyMap<string, tf.Tensor> | undefined,
  ) => Promise<void>
}

const FORMAT = "pipeline-train-checkpoint/1"
const LATEST = "latest.json"

const writeTensors = async (dir: string, name: string, tensors: Record<string, tf.Tensor>) => {
  const { data, specs } = await tf.io.encodeWeights(tensors)
  const bytes = Array.isArray(data) ? Buffer.concat(data.map((b) => Buffer.from(b))) : Buffer.from(data)
  await writeFile(join(dir, `${name}.bin`), bytes)
  await writeFile(join(dir, `${name}.json`), JSON.stringify(specs))
}

const readTensors = async (dir: string, name: string): Promise<Record<string, tf.Tensor>> => {
  const specs = JSON.parse(await readFile(join(dir, `${name}.json`), "utf8")) as tf.io.WeightsManifestEntry[]
  const bytes = await readFile(join(dir, `${name}.bin`))
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  return tf.io.decodeWeights(buffer, specs)
}

/**
 * Checkpoints in `dir`. `identity` (the run's settings) is saved with each and must match on load, so a
 * checkpoint is never resumed into a different run.
 */
export const folderCheckpointer = (dir: string, identity: unknown): Checkpointer => {
  const id = JSON.stringify(identity)
  return {
    load: async (model, optimizer) => {
      let name: string
      try {
        name = (JSON.parse(await readFile(join(dir, LATEST), "utf8")) as { dir: string }).dir
      } catch {
        return undefined
      }
      const folder = join(dir, name)
      const saved = JSON.parse(await readFile(join(folder, "state.json"), "utf8")) as {
        format: string
        identity: string
        state: LoopState
        best: boolean
      }
      if (saved.format !== FORMAT || saved.identity !== id) return undefined
      const loaded = await loadBert(join(folder, "model"))
      try {
        assignParams(model, loaded.model.params)
      } finally {
        disposeBert(loaded.model)
      }
      const moments = await readTensors(folder, "optimizer")
      const byName = new Map<string, { m: tf.Tensor; v: tf.Tensor }>()
      for (const [key, t] of Object.entries(moments)) {
        const [which, param] = [key.slice(0, 1), key.slice(2)]
        const entry = byName.get(param) ?? ({} as { m: tf.Tensor; v: tf.Tensor })
        entry[which as "m" | "v"] = t
        byName.set(param, entry)
      }
      optimizer.restore({ step: saved.state.step, moments: byName })
      tf.dispose(Object.values(moments))
      const best = saved.best ? new Map(Object.entries(await readTensors(folder, "best"))) : undefined
      return { state: saved.state, best }
    },
    save: async (model, optimizer, state, best) => {
      await mkdir(dir, { recursive: true })
      const name = `ckpt-${state.epoch}`
      const folder = join(dir, name)
      await rm(folder, { recursive: true, force: true })
      await mkdir(folder, { recursive: true })
      await saveBert(model, join(folder, "model"))
      const moments: Record<string, tf.Tensor> = {}
      for (const [param, { m, v }] of optimizer.state().moments) {
        moments[`m:${param}`] = m
        moments[`v:${param}`] = v
      }
      await writeTensors(folder, "optimizer", moments)
      if (best !== undefined) await writeTensors(folder, "best", Object.fromEntries(best))
      await writeFile(
        join(folder, "state.json"),
        JSON.stringify({ format: FORMAT, identity: id, state, best: best !== undefined }),
      )
      const tmp = join(dir, `${LATEST}.tmp`)
      await writeFile(tmp, JSON.stringify({ dir: name }))
      await rename(tmp, join(dir, LATEST))
      for (const entry of await readdir(dir))
        if (entry.startsWith("ckpt-") && entry !== name)
          await rm(join(dir, entry), { recursive: true, force: true })
    },
  }
}
