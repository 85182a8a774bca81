/**
 * TensorFlow.js model folders on the local file system, without tfjs-node: `model.json` (the topology,
 * the weights manifest and metadata) beside `group1-shard{i}of{n}.bin` files of at most 4 MiB each.
 *
 * `fileSystemIO(dir)` is a plain `tf.io.IOHandler`, so it also saves and loads `tf.LayersModel`s; the
 * encoder's own `saveBert`/`loadBert` are in bert-io.ts. A save replaces the whole folder atomically.
 */
import { readFile } from "node:fs/promises"
import { isAbsolute, join, normalize } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { ModelFileInvalid } from "./errors.js"
import { writeDirAtomic } from "./files.js"

/** The file holding the topology and the weights manifest. */
export const MODEL_JSON = "model.json"

/** The largest shard written, as TensorFlow.js's converter does (browser caches like small files). */
export const SHARD_BYTES = 4 * 1024 * 1024

/** Options for `fileSystemIO`. */
export interface FileSystemIOOptions {
  /** shard size in bytes; 4 MiB unless given */
  readonly shardBytes?: number
  /** more files to write into the folder with the model (a vocabulary, a card), in the same atomic save */
  readonly extraFiles?: ReadonlyArray<readonly [string, Uint8Array | string]>
}

const BYTES_PER_ELEMENT: Readonly<Record<string, number>> = {
  float32: 4,
  int32: 4,
  bool: 1,
  uint8: 1,
  uint16: 2,
  float16: 2,
}

const specBytes = (spec: tf.io.WeightsManifestEntry): number => {
  const elements = spec.shape.reduce((a, b) => a * b, 1)
  const dtype = spec.quantization?.dtype ?? spec.dtype
  const size = BYTES_PER_ELEMENT[dtype]
  if (size === undefined) throw new Error(`weight "${spec.name}" has dtype ${dtype}, which has no fixed size`)
  return elements * size
}

/** A `tf.io.IOHandler` that saves to and loads from the folder `dir`. */
export const fileSystemIO = (dir: string, options: FileSystemIOOptions = {}): tf.io.IOHandler => ({
  save: async (artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
    if (artifacts.modelTopology instanceof ArrayBuffer) {
      throw new ModelFileInvalid({
        path: dir,
        message: `${dir}: binary (GraphDef) topologies cannot be saved here`,
      })
    }
    const shardBytes = options.shardBytes ?? SHARD_BYTES
    const data =
      artifacts.weightData === undefined
        ? new ArrayBuffer(0)
        : tf.io.CompositeArrayBuffer.join(artifacts.weightData as ArrayBuffer | Array<ArrayBuffer>)
    const count = Math.max(1, Math.ceil(data.byteLength / shardBytes))
    const shards: Array<readonly [string, Uint8Array]> = []
    for (let i = 0; i < count; i++) {
      const bytes = new Uint8Array(
        data,
        i * shardBytes,
        Math.min(shardBytes, data.byteLength - i * shardBytes),
      )
      shards.push([`group1-shard${i + 1}of${count}.bin`, bytes])
    }
    const modelJson: Record<string, unknown> = {
      modelTopology: artifacts.modelTopology ?? null,
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
      weightsManifest: [{ paths: shards.map(([name]) => name), weights: artifacts.weightSpecs ?? [] }],
    }
    for (const key of ["trainingConfig", "signature", "userDefinedMetadata", "modelInitializer"] as const) {
      if (artifacts[key] !== undefined) modelJson[key] = artifacts[key]
    }
    await writeDirAtomic(dir, [
      [MODEL_JSON, `${JSON.stringify(modelJson, null, 2)}\n`],
      ...shards,
      ...(options.extraFiles ?? []),
    ])
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) }
  },

  load: async (): Promise<tf.io.ModelArtifacts> => {
    const jsonPath = join(dir, MODEL_JSON)
    const fail = (path: string, message: string): never => {
      throw new ModelFileInvalid({ path, message: `${path}: ${message}` })
    }
    let text = ""
    try {
      text = await readFile(jsonPath, "utf8")
    } catch (e) {
      fail(jsonPath, `cannot read the model (${(e as Error).message}); is ${dir} a saved model folder?`)
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      fail(jsonPath, `not valid JSON: ${(e as Error).message}`)
    }
    if (typeof json !== "object" || json === null || Array.isArray(json))
      return fail(jsonPath, "not a JSON object")
    const modelJson = json as Record<string, unknown>
    const manifest = modelJson.weightsManifest
    if (!Array.isArray(manifest)) return fail(jsonPath, "weightsManifest is missing or not a list")
    const weightSpecs: Array<tf.io.WeightsManifestEntry> = []
    const buffers: Array<ArrayBuffer> = []
    for (const [g, group] of manifest.entries()) {
      const { paths, weights } = (group ?? {}) as { paths?: unknown; weights?: unknown }
      if (!Array.isArray(paths) || !paths.every((p) => typeof p === "string")) {
        return fail(jsonPath, `weightsManifest[${g}].paths must be a list of file names`)
      }
      if (!Array.isArray(weights)) return fail(jsonPath, `weightsManifest[${g}].weights must be a list`)
      let expected = 0
      for (const w of weights as Array<tf.io.WeightsManifestEntry>) {
        if (typeof w?.name !== "string" || !Array.isArray(w.shape) || typeof w.dtype !== "string") {
          return fail(jsonPath, `weightsManifest[${g}] holds an entry without name, shape and dtype`)
        }
        try {
          expected += specBytes(w)
        } catch (e) {
          return fail(jsonPath, (e as Error).message)
        }
        weightSpecs.push(w)
      }
      let found = 0
      for (const p of paths as Array<string>) {
        // Shards live in the folder: refuse paths that would read elsewhere.
        if (isAbsolute(p) || normalize(p).startsWith("..")) {
          return fail(jsonPath, `shard path "${p}" points outside the model folder`)
        }
        const shardPath = join(dir, p)
        let bytes: Buffer
        try {
          bytes = await readFile(shardPath)
        } catch (e) {
          return fail(shardPath, `cannot read the weight shard: ${(e as Error).message}`)
        }
        buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer)
        found += bytes.byteLength
      }
      if (found !== expected) {
        fail(
          jsonPath,
          `weight group ${g + 1} needs ${expected} bytes but its shards (${paths.join(", ")}) hold ${found}; ` +
            "the folder is incomplete or the shards were mixed up: save the model again",
        )
      }
    }
    const artifacts: tf.io.ModelArtifacts = {
      weightSpecs,
      weightData: tf.io.CompositeArrayBuffer.join(buffers),
    }
    const topology = modelJson.modelTopology
    if (topology !== undefined && topology !== null) artifacts.modelTopology = topology as {}
    if (typeof modelJson.format === "string") artifacts.format = modelJson.format
    if (typeof modelJson.generatedBy === "string") artifacts.generatedBy = modelJson.generatedBy
    if (typeof modelJson.convertedBy === "string") artifacts.convertedBy = modelJson.convertedBy
    for (const key of ["trainingConfig", "signature", "userDefinedMetadata", "modelInitializer"] as const) {
      if (modelJson[key] !== undefined) (artifacts as Record<string, unknown>)[key] = modelJson[key]
    }
    return artifacts
  },
})
