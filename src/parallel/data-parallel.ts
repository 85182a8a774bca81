/**
 * Data-parallel training of the built-in encoder across CPU cores: N worker threads, each with a full replica of
 * the model on its own TensorFlow.js backend (wasm, single-threaded, so one core each), each computing the
 * gradient of its shard of every batch.
 *
 *   main thread                        worker r (of N)
 *   step(batch) ── shard r (rows) ───► forward + backward on the shard; mean gradient -> slot r of `slots`
 *               ◄── loss_r, count_r ──
 *   w_r = count_r / Σ count   ──────► g = Σ w_r · slot_r (float64, rank order); optimizer.applyGradients(g)
 *               ◄── done ─────────────
 *
 * `count_r` is how many labels shard r scores (rows for classification, masked tokens for masked LM), so the
 * weighted sum is exactly the gradient of the whole batch's mean loss, whatever the shards hold. Every replica
 * sums the same slots in the same order and runs the same update, so the replicas stay identical bit for bit
 * without sending weights around; only the batch (ints) and four numbers per worker cross threads per step.
 *
 * Usage (the training stage):
 *
 *   const trainer = await createDataParallelTrainer({
 *     workers: 2, config, seed: 1, initialWeights,        // e.g. a loaded checkpoint's values
 *     lossKind: "classification", trainable: ["layer.-1", "pooler", "classifier"],
 *     optimizer: { kind: "adam", learningRate: 2e-5 },
 *   })
 *   try {
 *     for (const [i, batch] of batches.entries())
 *       const { loss } = await trainer.step(batch, { dropoutSeed: seed + i, learningRate: schedule(i) })
 *     const weights = await trainer.weights()           // Map<name, Float32Array>, to save
 *   } finally {
 *     await trainer.close()
 *   }
 *
 * To change gradients before the update (clipping), use `gradients(batch)`, then `applyGradients(grads)`.
 *
 * - Dropout: each worker draws its masks from `dropoutSeed * workers + rank`, so with dropout on the numbers
 *   depend on the worker count; without a seed, dropout is off and N workers compute what one process computes
 *   (up to float rounding: the test holds the gradients to 1e-5 relative).
 * - Only parameters that are trainable and that the loss reaches get gradients and updates (classification
 *   does not reach the masked-LM head; masked LM does not reach the pooler and classifier).
 * - The worker script is `dist/parallel-worker.mjs` (`npm run build`); `workerUrl` overrides it.
 * - Failures reject with `BatchInvalid` (checked before anything is sent) or `ReplicaFailed`; after a
 *   `ReplicaFailed` every call rejects with it: close the trainer.
 */
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"
import type { BertConfig } from "../model/config.js"
import { batchProblems, type HostBatch, type LossKind, shardBatch } from "./batch.js"
import { BatchInvalid, ReplicaFailed } from "./errors.js"
import type {
  Done,
  OptimizerSpec,
  ParamSlot,
  ReplicaBackend,
  Reply,
  Request,
  WorkerReady,
} from "./protocol.js"
import { weightedSum } from "./reduce.js"

/** How to start a data-parallel trainer. */
export interface DataParallelOptions {
  /** worker threads, each with a replica; 1 trains off the main thread */
  readonly workers: number
  readonly config: BertConfig
  /** seeds the parameters `initialWeights` does not give, as `createBert` does */
  readonly seed: number
  /** starting values by parameter name, row-major (a checkpoint's); the caller keeps them */
  readonly initialWeights?: ReadonlyMap<string, Float32Array>
  /** selectors of the parameters to train (see `trainOnly`); default `["all"]` */
  readonly trainable?: ReadonlyArray<string>
  readonly lossKind: LossKind
  readonly optimizer: OptimizerSpec
  /** default wasm; cpu is for tests */
  readonly backend?: ReplicaBackend
  /** the encoder's last block computes every token's row (`ForwardOptions.allRows`): for comparisons */
  readonly allRows?: boolean
  /** the worker script; default `dist/parallel-worker.mjs` */
  readonly workerUrl?: URL
}

/** Options of one training step. */
export interface StepOptions {
  /** turns dropout on, seeded (see the file comment); left out, dropout is off */
  readonly dropoutSeed?: number
  /** the optimizer's learning rate from this step on */
  readonly learningRate?: number
}

/** A batch's mean loss over the labels it scores, and how many that is. */
export interface LossResult {
  readonly loss: number
  readonly count: number
}

/** The mean loss's gradients by parameter name (the trained parameters, `DataParallelTrainer.params`). */
export interface GradientResult extends LossResult {
  readonly grads: ReadonlyMap<string, Float32Array>
}

/** An evaluation: loss, and for classification the class probabilities, [rows, num_labels] row-major. */
export interface EvaluationResult extends LossResult {
  readonly probs?: Float32Array
}

/** A running data-parallel trainer. Calls are queued: each starts when the previous one has finished. */
export interface DataParallelTrainer {
  readonly workers: number
  /** the trained parameters, in gradient-buffer order */
  readonly params: ReadonlyArray<{ readonly name: string; readonly shape: ReadonlyArray<number> }>
  /** what each replica runs on, e.g. "wasm with SIMD" */
  readonly backend: string
  /** Forward, backward and the optimizer update on the whole batch. */
  step(batch: HostBatch, options?: StepOptions): Promise<LossResult>
  /** The batch's gradients, averaged across workers, not applied. */
  gradients(batch: HostBatch, options?: Pick<StepOptions, "dropoutSeed">): Promise<GradientResult>
  /** Apply gradients (every trained parameter's) with the optimizer on every replica. */
  applyGradients(
    grads: ReadonlyMap<string, Float32Array>,
    options?: Pick<StepOptions, "learningRate">,
  ): Promise<void>
  /** Loss (and probabilities) with dropout off. */
  evaluate(batch: HostBatch): Promise<EvaluationResult>
  /** Every parameter's current value, from replica `worker` (default 0; all replicas hold the same). */
  weights(worker?: number): Promise<Map<string, Float32Array>>
  /** Replace parameter values on every replica; the optimizer's state is kept. */
  setWeights(values: ReadonlyMap<string, Float32Array>): Promise<void>
  /** End the workers. Idempotent. */
  close(): Promise<void>
}

/** The name of the built worker script, beside the CLI bundle in `dist/`. */
export const WORKER_FILE = "parallel-worker.mjs"

/**
 * The built worker script: next to this module when it is bundled into `dist/` (or one level up, from
 * `dist/chunks/`), else `dist/` of the repository, when running from `src/` (tests).
 */
export const builtWorkerUrl = (): URL => {
  for (const candidate of [`./${WORKER_FILE}`, `../${WORKER_FILE}`, `../../dist/${WORKER_FILE}`]) {
    const url = new URL(candidate, import.meta.url)
    if (existsSync(fileURLToPath(url))) return url
  }
  throw new Error(`the data-parallel worker ${WORKER_FILE} is not built: run npm run build`)
}

type Pending = { readonly resolve: (d: Done) => void; readonly reject: (e: ReplicaFailed) => void }

/** One worker and its outstanding requests. */
class Replica {
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private exited = false

  constructor(
    readonly rank: number,
    readonly worker: Worker,
    private readonly onFailure: (e: ReplicaFailed) => void,
  ) {
    worker.on("message", (reply: Reply) => {
      if (reply.type === "ready") return
      const p = reply.id === undefined ? undefined : this.pending.get(reply.id)
      if (reply.id !== undefined) this.pending.delete(reply.id)
      if (reply.type === "done") p?.resolve(reply)
      else this.fail(reply.message, p)
    })
    worker.on("error", (e) => this.fail(`worker ${rank} crashed: ${e.message}`))
    worker.on("exit", (code) => {
      this.exited = true
      this.fail(`worker ${rank} exited with code ${code}`)
    })
  }

  private fail(message: string, first?: Pending): void {
    const error = new ReplicaFailed({ worker: this.rank, message })
    first?.reject(error)
    for (const p of this.pending.values()) p.reject(error)
    this.pending.clear()
    this.onFailure(error)
  }

  /** Send a request; resolves with its answer. */
  request(make: (id: number) => Request, transfer: ReadonlyArray<ArrayBuffer> = []): Promise<Done> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      if (this.exited) {
        reject(new ReplicaFailed({ worker: this.rank, message: `worker ${this.rank} has exited` }))
        return
      }
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage(make(id), transfer as Array<ArrayBuffer>)
    })
  }
}

/** Wait for a worker's start-up answer. */
const ready = (rank: number, worker: Worker): Promise<WorkerReady> =>
  new Promise((resolve, reject) => {
    const onMessage = (reply: Reply) => {
      if (reply.type === "ready") done(() => resolve(reply))
      else if (reply.type === "failed")
        done(() => reject(new ReplicaFailed({ worker: rank, message: reply.message })))
    }
    const onError = (e: Error) =>
      done(() => reject(new ReplicaFailed({ worker: rank, message: `worker ${rank} crashed: ${e.message}` })))
    const onExit = (code: number) =>
      done(() =>
        reject(new ReplicaFailed({ worker: rank, message: `worker ${rank} exited with code ${code}` })),
      )
    const done = (settle: () => void) => {
      worker.off("message", onMessage)
      worker.off("error", onError)
      worker.off("exit", onExit)
      settle()
    }
    worker.on("message", onMessage)
    worker.on("error", onError)
    worker.on("exit", onExit)
  })

const sameLayout = (a: ReadonlyArray<ParamSlot>, b: ReadonlyArray<ParamSlot>): boolean =>
  a.length === b.length &&
  a.every((s, i) => s.name === b[i]!.name && s.offset === b[i]!.offset && s.size === b[i]!.size)

/** Start the workers and wait until every replica is ready. Rejects with `ReplicaFailed` if one is not. */
export const createDataParallelTrainer = async (
  options: DataParallelOptions,
): Promise<DataParallelTrainer> => {
  const n = options.workers
  if (!Number.isInteger(n) || n < 1) throw new Error(`workers must be a positive integer, not ${n}`)
  const url = options.workerUrl ?? builtWorkerUrl()
  const workers = Array.from(
    { length: n },
    (_, rank) =>
      new Worker(url, {
        workerData: {
          rank,
          config: options.config,
          seed: options.seed,
          ...(options.initialWeights === undefined ? {} : { initialWeights: options.initialWeights }),
          trainable: options.trainable ?? ["all"],
          lossKind: options.lossKind,
          optimizer: options.optimizer,
          backend: options.backend ?? "wasm",
          ...(options.allRows === true ? { allRows: true } : {}),
        },
      }),
  )
  let readies: Array<WorkerReady>
  try {
    readies = await Promise.all(workers.map((w, rank) => ready(rank, w)))
  } catch (e) {
    await Promise.all(workers.map((w) => w.terminate()))
    throw e
  }
  const { layout, total, backend } = readies[0]!
  if (!readies.every((r) => sameLayout(r.layout, layout))) {
    await Promise.all(workers.map((w) => w.terminate()))
    throw new ReplicaFailed({ worker: 0, message: "the replicas disagree on the parameters they train" })
  }

  let broken: ReplicaFailed | undefined
  let closed = false
  const replicas = workers.map(
    (w, rank) =>
      new Replica(rank, w, (e) => {
        if (!closed) broken ??= e
      }),
  )
  const slots = new SharedArrayBuffer(4 * n * total)
  const reduced = new SharedArrayBuffer(4 * total)
  const slotView = new Float32Array(slots)
  const reducedView = new Float32Array(reduced)
  await Promise.all(replicas.map((r) => r.request((id) => ({ type: "attach", id, slots, reduced }))))

  // One call at a time: a step's phases must not interleave with another call's.
  let queue: Promise<unknown> = Promise.resolve()
  const exclusive = <A>(run: () => Promise<A>): Promise<A> => {
    const next = queue.then(() => {
      if (closed) throw new Error("the data-parallel trainer is closed")
      if (broken !== undefined) throw broken
      return run()
    })
    queue = next.catch(() => undefined)
    return next
  }

  const checked = (batch: HostBatch): Array<HostBatch | undefined> => {
    const problems = batchProblems(batch, options.lossKind)
    if (problems.length > 0)
      throw new BatchInvalid({
        problems,
        message: `the batch cannot be used:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
      })
    return shardBatch(batch, options.lossKind, n)
  }

  /** Every shard's loss and count, and the weights that average them; gradients land in the slots. */
  const shardGradients = async (batch: HostBatch, dropoutSeed: number | undefined) => {
    const shards = checked(batch)
    const answers = await Promise.all(
      replicas.map((r, rank) => {
        const shard = shards[rank]
        if (shard === undefined) return { loss: 0, count: 0 }
        return r.request((id) => ({
          type: "gradients",
          id,
          batch: shard,
          ...(dropoutSeed === undefined ? {} : { dropoutSeed: dropoutSeed * n + rank }),
        }))
      }),
    )
    const counts = answers.map((a) => a.count ?? 0)
    const total = counts.reduce((a, b) => a + b, 0)
    const weights = counts.map((c) => (total === 0 ? 0 : c / total))
    const loss = answers.reduce((acc, a, i) => acc + weights[i]! * (a.loss ?? 0), 0)
    return { loss, count: total, weights }
  }

  const broadcast = (make: (id: number) => Request) => Promise.all(replicas.map((r) => r.request(make)))

  const step = (batch: HostBatch, stepOptions: StepOptions = {}): Promise<LossResult> =>
    exclusive(async () => {
      const { loss, count, weights } = await shardGradients(batch, stepOptions.dropoutSeed)
      // Nothing scored: no gradient, and the optimizer's step count does not move.
      if (count > 0)
        await broadcast((id) => ({
          type: "apply",
          id,
          weights,
          ...(stepOptions.learningRate === undefined ? {} : { learningRate: stepOptions.learningRate }),
        }))
      return { loss, count }
    })

  const gradients = (batch: HostBatch, gradOptions: Pick<StepOptions, "dropoutSeed"> = {}) =>
    exclusive(async (): Promise<GradientResult> => {
      const { loss, count, weights } = await shardGradients(batch, gradOptions.dropoutSeed)
      const summed = weightedSum(slotView, total, weights, new Float32Array(total))
      const grads = new Map(
        layout.map((slot) => [slot.name, summed.slice(slot.offset, slot.offset + slot.size)]),
      )
      return { loss, count, grads }
    })

  const applyGradients = (
    grads: ReadonlyMap<string, Float32Array>,
    applyOptions: Pick<StepOptions, "learningRate"> = {},
  ) =>
    exclusive(async () => {
      for (const slot of layout) {
        const g = grads.get(slot.name)
        if (g === undefined) throw new Error(`applyGradients: no gradient for "${slot.name}"`)
        if (g.length !== slot.size)
          throw new Error(`applyGradients: "${slot.name}" needs ${slot.size} values, not ${g.length}`)
        reducedView.set(g, slot.offset)
      }
      await broadcast((id) => ({
        type: "apply",
        id,
        weights: "reduced",
        ...(applyOptions.learningRate === undefined ? {} : { learningRate: applyOptions.learningRate }),
      }))
    })

  const evaluate = (batch: HostBatch) =>
    exclusive(async (): Promise<EvaluationResult> => {
      const shards = checked(batch)
      const answers = await Promise.all(
        replicas.map((r, rank) => {
          const shard = shards[rank]
          return shard === undefined ? undefined : r.request((id) => ({ type: "evaluate", id, batch: shard }))
        }),
      )
      const count = answers.reduce((acc, a) => acc + (a?.count ?? 0), 0)
      const loss =
        count === 0 ? 0 : answers.reduce((acc, a) => acc + ((a?.count ?? 0) / count) * (a?.loss ?? 0), 0)
      if (options.lossKind !== "classification") return { loss, count }
      const parts = answers.flatMap((a) => (a?.probs === undefined ? [] : [a.probs]))
      const probs = new Float32Array(parts.reduce((acc, p) => acc + p.length, 0))
      let at = 0
      for (const p of parts) {
        probs.set(p, at)
        at += p.length
      }
      return { loss, count, probs }
    })

  const weightsOf = (worker = 0) =>
    exclusive(async () => {
      const replica = replicas[worker]
      if (replica === undefined) throw new Error(`no worker ${worker}: there are ${n}`)
      const done = await replica.request((id) => ({ type: "get-weights", id }))
      return done.values!
    })

  const setWeights = (values: ReadonlyMap<string, Float32Array>) =>
    exclusive(async () => {
      await broadcast((id) => ({ type: "set-weights", id, values }))
    })

  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await Promise.all(workers.map((w) => w.terminate()))
  }

  return {
    workers: n,
    params: layout.map((s) => ({ name: s.name, shape: s.shape })),
    backend,
    step,
    gradients,
    applyGradients,
    evaluate,
    weights: weightsOf,
    setWeights,
    close,
  }
}
