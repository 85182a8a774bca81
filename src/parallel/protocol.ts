/**
 * What the data-parallel trainer (`data-parallel.ts`, main thread) and its workers (`worker.ts`) say to each
 * other. Requests carry an id; a worker answers each with `done` or `failed` under the same id, in order.
 *
 * Gradients do not travel in messages: each worker writes its shard's mean gradient into its own slot of a
 * shared buffer (`slots`, `workers` x `total` float32s, parameters at `ParamSlot.offset`), and each worker,
 * told the shard weights, sums the slots itself in rank order, so every replica computes the same bits and
 * applies the same update. `reduced` holds gradients the caller supplies (`applyGradients`).
 */
import type { BertConfig } from "../model/config.js"
import type { HostBatch, LossKind } from "./batch.js"

/** The optimizer each replica runs: TensorFlow.js's, with its defaults for what is left out. */
export type OptimizerSpec =
  | {
      readonly kind: "adam"
      readonly learningRate: number
      readonly beta1?: number
      readonly beta2?: number
      /** tfjs's default is 1e-7; PyTorch's is 1e-8 */
      readonly epsilon?: number
    }
  | { readonly kind: "sgd"; readonly learningRate: number }

/** The backends a replica can run on: wasm for real work, cpu for tests. */
export type ReplicaBackend = "wasm" | "cpu"

/** What a worker starts from (its `workerData`). */
export interface WorkerSetup {
  readonly rank: number
  readonly config: BertConfig
  readonly seed: number
  readonly initialWeights?: ReadonlyMap<string, Float32Array>
  readonly trainable: ReadonlyArray<string>
  readonly lossKind: LossKind
  readonly optimizer: OptimizerSpec
  readonly backend: ReplicaBackend
  /** see `DataParallelOptions.allRows` */
  readonly allRows?: boolean
}

/** A trained parameter's place in the flat gradient buffers. */
export interface ParamSlot {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly offset: number
  readonly size: number
}

/** The parameters a worker trains, in buffer order, and what it runs on. */
export interface WorkerReady {
  readonly type: "ready"
  readonly layout: ReadonlyArray<ParamSlot>
  readonly total: number
  /** the backend's description, as `initBackend` gives it */
  readonly backend: string
}

/** Requests, main thread to worker. */
export type Request =
  | {
      readonly type: "attach"
      readonly id: number
      readonly slots: SharedArrayBuffer
      readonly reduced: SharedArrayBuffer
    }
  | {
      readonly type: "gradients"
      readonly id: number
      readonly batch: HostBatch
      readonly dropoutSeed?: number
    }
  | {
      readonly type: "apply"
      readonly id: number
      /** per-worker weights of the slots, or "reduced" for the caller's gradients */
      readonly weights: ReadonlyArray<number> | "reduced"
      readonly learningRate?: number
    }
  | { readonly type: "evaluate"; readonly id: number; readonly batch: HostBatch }
  | { readonly type: "get-weights"; readonly id: number }
  | { readonly type: "set-weights"; readonly id: number; readonly values: ReadonlyMap<string, Float32Array> }

/** What a request produced. */
export interface Done {
  readonly type: "done"
  readonly id: number
  /** gradients, evaluate: the shard's mean loss and how many labels it scored */
  readonly loss?: number
  readonly count?: number
  /** evaluate, classification: the shard's class probabilities, [rows, num_labels] */
  readonly probs?: Float32Array
  /** get-weights: every parameter */
  readonly values?: Map<string, Float32Array>
}

/** A request (or, with no id, the start-up) that threw. */
export interface Failed {
  readonly type: "failed"
  readonly id?: number
  readonly message: string
}

/** Messages, worker to main thread. */
export type Reply = WorkerReady | Done | Failed
