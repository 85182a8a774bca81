/**
 * Data-parallel training of the built-in encoder across CPU cores, one model replica per worker thread (see
 * `data-parallel.ts`).
 */
export {
  batchProblems,
  type HostBatch,
  IGNORE_INDEX,
  type LossKind,
  scoredLabels,
  shardBatch,
} from "./batch.js"
export {
  builtWorkerUrl,
  createDataParallelTrainer,
  type DataParallelOptions,
  type DataParallelTrainer,
  type EvaluationResult,
  type GradientResult,
  type LossResult,
  type StepOptions,
  WORKER_FILE,
} from "./data-parallel.js"
export { BatchInvalid, ReplicaFailed } from "./errors.js"
export type { OptimizerSpec, ReplicaBackend } from "./protocol.js"
