/**
 * One replica of a data-parallel run (see `data-parallel.ts`), in its own worker thread: TensorFlow.js on its own
 * backend, the model, the optimizer, and the answers to the trainer's requests (`protocol.ts`). scripts/build.mjs
 * builds it to `dist/parallel-worker.mjs`.
 */
import { parentPort, workerData } from "node:worker_threads"
import * as tf from "@tensorflow/tfjs"
import { loadTf } from "../compute/load.js"
import { startWasm } from "../compute/wasm.js"
import {
  type BertModel,
  classificationLogits,
  createBert,
  crossEntropy,
  type ForwardOptions,
  IGNORE_INDEX,
  maskedLmLogits,
  maskedTargets,
  paramPart,
  paramSpecs,
  trainOnly,
} from "../model/index.js"
import type { HostBatch } from "./batch.js"
import type { Done, OptimizerSpec, ParamSlot, Reply, Request, WorkerSetup } from "./protocol.js"
import { weightedSum } from "./reduce.js"

const port = parentPort!
const setup = workerData as WorkerSetup
const post = (reply: Reply, transfer: ReadonlyArray<ArrayBuffer> = []): void =>
  port.postMessage(reply, transfer as Array<ArrayBuffer>)

const startBackend = async (): Promise<string> => {
  const tfModule = await loadTf()
  if (setup.backend === "cpu") {
    if (!(await tfModule.setBackend("cpu"))) throw new Error("the cpu backend did not start")
    return "cpu"
  }
  const started = await startWasm(tfModule)
  if (!started.ok) throw new Error(`the wasm backend did not start: ${started.reason}`)
  return `wasm${started.simd ? " with SIMD" : ""}`
}

/** The parts a loss reaches: the other head gets no gradient, so it is not in the buffers. */
const reached = (name: string): boolean => {
  const part = paramPart(name)
  return setup.lossKind === "classification" ? part !== "mlm" : part !== "pooler" && part !== "classifier"
}

const makeOptimizer = (spec: OptimizerSpec): tf.Optimizer =>
  spec.kind === "sgd"
    ? tf.train.sgd(spec.learningRate)
    : tf.train.adam(spec.learningRate, spec.beta1, spec.beta2, spec.epsilon)

const setLearningRate = (optimizer: tf.Optimizer, rate: number): void => {
  if (optimizer instanceof tf.SGDOptimizer) optimizer.setLearningRate(rate)
  // AdamOptimizer reads its (protected) field on every update and has no setter.
  else (optimizer as unknown as { learningRate: number }).learningRate = rate
}

const tensors = (batch: HostBatch) => {
  const grid = (a: Int32Array) => tf.tensor2d(a, [batch.rows, batch.seq], "int32")
  return {
    inputIds: grid(batch.inputIds),
    ...(batch.attentionMask === undefined ? {} : { attentionMask: grid(batch.attentionMask) }),
    ...(batch.tokenTypeIds === undefined ? {} : { tokenTypeIds: grid(batch.tokenTypeIds) }),
  }
}

/** The shard's mean loss (scalar), its logits, and how many labels it scores. */
const forward = (
  model: BertModel,
  batch: HostBatch,
  options: ForwardOptions,
): { loss: tf.Scalar; logits: tf.Tensor2D; count: number } => {
  const input = tensors(batch)
  const o: ForwardOptions = setup.allRows === true ? { ...options, allRows: true } : options
  if (setup.lossKind === "classification") {
    const labels = tf.tensor1d(batch.labels, "int32")
    const logits = classificationLogits(model, input, o)
    let count = 0
    for (const l of batch.labels) if (l !== IGNORE_INDEX) count++
    return { loss: crossEntropy(logits, labels), logits, count }
  }
  const { positions, targets } = maskedTargets(batch.labels)
  const logits = maskedLmLogits(model, input, positions, o)
  return { loss: crossEntropy(logits, tf.tensor1d(targets, "int32")), logits, count: positions.length }
}

const main = async (): Promise<void> => {
  const backend = await startBackend()
  const shapes = new Map(paramSpecs(setup.config).map((s) => [s.name, s.shape as Array<number>]))
  const values = new Map<string, tf.Tensor>()
  let model: BertModel
  try {
    for (const [name, flat] of setup.initialWeights ?? []) {
      const shape = shapes.get(name)
      if (shape === undefined) throw new Error(`initialWeights: the model has no parameter "${name}"`)
      values.set(name, tf.tensor(flat, shape, "float32"))
    }
    model = createBert(setup.config, { seed: setup.seed, values })
  } finally {
    tf.dispose([...values.values()])
  }
  trainOnly(model, setup.trainable)

  const layout: Array<ParamSlot> = []
  const variables: Array<tf.Variable> = []
  let total = 0
  for (const [name, v] of model.params) {
    if (!v.trainable || !reached(name)) continue
    layout.push({ name, shape: v.shape, offset: total, size: v.size })
    variables.push(v)
    total += v.size
  }
  if (layout.length === 0)
    throw new Error(
      `no parameter to train: the selectors ${JSON.stringify(setup.trainable)} pick none that the ${setup.lossKind} loss reaches`,
    )
  const optimizer = makeOptimizer(setup.optimizer)
  let slots: Float32Array | undefined
  let reduced: Float32Array | undefined
  const sum = new Float32Array(total)

  const handle = (request: Request): void => {
    switch (request.type) {
      case "attach":
        slots = new Float32Array(request.slots)
        reduced = new Float32Array(request.reduced)
        post({ type: "done", id: request.id })
        return
      case "gradients": {
        const options: ForwardOptions =
          request.dropoutSeed === undefined ? {} : { dropoutSeed: request.dropoutSeed }
        let count = 0
        const { value, grads } = tf.variableGrads(() => {
          const f = forward(model, request.batch, options)
          count = f.count
          return f.loss
        }, variables)
        const mine = slots!.subarray(setup.rank * total, (setup.rank + 1) * total)
        for (const [i, slot] of layout.entries()) {
          const g = grads[variables[i]!.name]
          if (g === undefined || g === null) mine.fill(0, slot.offset, slot.offset + slot.size)
          else mine.set(g.dataSync() as Float32Array, slot.offset)
        }
        const loss = value.dataSync()[0]!
        tf.dispose([value, ...Object.values(grads).filter((g): g is tf.Tensor => g !== null)])
        post({ type: "done", id: request.id, loss, count })
        return
      }
      case "apply": {
        const source =
          request.weights === "reduced" ? reduced! : weightedSum(slots!, total, request.weights, sum)
        if (request.learningRate !== undefined) setLearningRate(optimizer, request.learningRate)
        tf.tidy(() => {
          const named: tf.NamedTensorMap = {}
          for (const [i, slot] of layout.entries()) {
            named[variables[i]!.name] = tf.tensor(
              source.subarray(slot.offset, slot.offset + slot.size),
              slot.shape as Array<number>,
            )
          }
          optimizer.applyGradients(named)
        })
        post({ type: "done", id: request.id })
        return
      }
      case "evaluate": {
        const [loss, probs, count] = tf.tidy(() => {
          const f = forward(model, request.batch, {})
          return [
            f.loss.dataSync()[0]!,
            // Copies: on the cpu backend dataSync is the tensor's own storage, not ours to transfer.
            setup.lossKind === "classification"
              ? Float32Array.from(tf.softmax(f.logits).dataSync())
              : undefined,
            f.count,
          ] as const
        })
        const done: Done = {
          type: "done",
          id: request.id,
          loss,
          count,
          ...(probs === undefined ? {} : { probs }),
        }
        post(done, probs === undefined ? [] : [probs.buffer as ArrayBuffer])
        return
      }
      case "get-weights": {
        const out = new Map<string, Float32Array>()
        for (const [name, v] of model.params) out.set(name, Float32Array.from(v.dataSync()))
        post(
          { type: "done", id: request.id, values: out },
          [...out.values()].map((a) => a.buffer as ArrayBuffer),
        )
        return
      }
      case "set-weights": {
        tf.tidy(() => {
          for (const [name, flat] of request.values) {
            const v = model.params.get(name)
            if (v === undefined) throw new Error(`setWeights: the model has no parameter "${name}"`)
            if (flat.length !== v.size)
              throw new Error(
                `setWeights: "${name}" has ${flat.length} values; its shape [${v.shape.join(", ")}] needs ${v.size}`,
              )
            v.assign(tf.tensor(flat, v.shape, "float32"))
          }
        })
        post({ type: "done", id: request.id })
        return
      }
    }
  }

  port.on("message", (request: Request) => {
    try {
      handle(request)
    } catch (e) {
      post({ type: "failed", id: request.id, message: e instanceof Error ? e.message : String(e) })
    }
  })
  post({ type: "ready", layout, total, backend })
}

main().catch((e: unknown) => post({ type: "failed", message: e instanceof Error ? e.message : String(e) }))
