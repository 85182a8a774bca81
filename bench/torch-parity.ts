/**
 * The encoder against an independent PyTorch BERT (bench/torch_bert.py) on the same weights: a small random
 * BERT is written as a Hugging Face checkpoint (`saveHfCheckpoint`: config.json + model.safetensors), both run
 * it on the same padded, two-segment inputs in evaluation mode, and every output is compared. Used by
 * bench/throughput.mjs and test/torch-parity.test.ts; runs on whatever TensorFlow.js backend is active.
 */
import { execFile, spawnSync } from "node:child_process"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import * as tf from "@tensorflow/tfjs"
import {
  type BertConfig,
  bertConfig,
  classify,
  createBert,
  disposeBert,
  encode,
  mlmLogits,
  pool,
  readSafetensors,
  saveHfCheckpoint,
} from "../src/model/index.js"

/** The PyTorch side, next to this file. */
export const TORCH_BERT = resolve(dirname(fileURLToPath(import.meta.url)), "torch_bert.py")

/** Debian's python3-torch installs under the system Python only. */
export const SYSTEM_PYTHON = "/usr/bin/python3"

/** torch's version under `python`, or undefined when it has none. */
export const torchVersion = (python: string = SYSTEM_PYTHON): string | undefined => {
  const r = spawnSync(python, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" })
  return r.status === 0 ? r.stdout.trim() : undefined
}

/** Small, with weights large enough (std 0.2) that every op moves the outputs. */
export const PARITY_CONFIG: BertConfig = bertConfig({
  vocab_size: 99,
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 64,
  max_position_embeddings: 16,
  type_vocab_size: 2,
  num_labels: 3,
  initializer_range: 0.2,
})

/** The largest |ours - PyTorch's| of each output, and overall. */
export interface ParityResult {
  readonly byOutput: Readonly<Record<"sequence" | "pooled" | "class_probs" | "mlm_logits", number>>
  readonly max: number
}

const run = (file: string, args: ReadonlyArray<string>): Promise<void> =>
  new Promise((res, rej) =>
    execFile(file, args, { maxBuffer: 16 << 20 }, (error, _stdout, stderr) =>
      error === null ? res() : rej(new Error(`${file} ${args.join(" ")} failed: ${stderr || error.message}`)),
    ),
  )

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY
  let d = 0
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!))
  return Number.isNaN(d) ? Number.POSITIVE_INFINITY : d
}

/** Where the Python side is, and what to compare on. */
export interface ParityOptions {
  readonly python?: string
  /** bench/torch_bert.py */
  readonly script?: string
  readonly config?: BertConfig
  readonly seed?: number
}

/** Compare the encoder with PyTorch on `config` (batch 3, sequence 12, some padding, two segments). */
export const torchParity = async (options: ParityOptions = {}): Promise<ParityResult> => {
  const { python = SYSTEM_PYTHON, script = TORCH_BERT, config = PARITY_CONFIG, seed = 5 } = options
  const dir = await mkdtemp(join(tmpdir(), "pipeline-torch-parity-"))
  const model = createBert(config, { seed })
  try {
    const [batch, seq] = [3, 12]
    const inputIds: Array<Array<number>> = []
    const attentionMask: Array<Array<number>> = []
    const tokenTypeIds: Array<Array<number>> = []
    for (let b = 0; b < batch; b++) {
      const length = seq - 3 * b
      inputIds.push(Array.from({ length: seq }, (_, t) => (t < length ? 1 + ((b * 31 + t * 17) % 98) : 0)))
      attentionMask.push(Array.from({ length: seq }, (_, t) => (t < length ? 1 : 0)))
      tokenTypeIds.push(Array.from({ length: seq }, (_, t) => (t >= length / 2 && t < length ? 1 : 0)))
    }
    const positions = [1, 5, 13, 20, 26, 30]
    await saveHfCheckpoint(model, join(dir, "checkpoint"))
    await writeFile(
      join(dir, "inputs.json"),
      JSON.stringify({
        input_ids: inputIds,
        attention_mask: attentionMask,
        token_type_ids: tokenTypeIds,
        positions,
      }),
    )
    await run(python, [
      script,
      "forward",
      join(dir, "checkpoint"),
      join(dir, "inputs.json"),
      join(dir, "out.safetensors"),
    ])
    const theirs = await readSafetensors(join(dir, "out.safetensors"))
    const ours = tf.tidy(() => {
      const input = {
        inputIds: tf.tensor2d(inputIds, undefined, "int32"),
        attentionMask: tf.tensor2d(attentionMask, undefined, "int32"),
        tokenTypeIds: tf.tensor2d(tokenTypeIds, undefined, "int32"),
      }
      const sequence = encode(model, input)
      return {
        sequence: sequence.dataSync(),
        pooled: pool(model, sequence).dataSync(),
        class_probs: classify(model, input).dataSync(),
        mlm_logits: mlmLogits(model, sequence, tf.tensor1d(positions, "int32")).dataSync(),
      }
    })
    const byOutput = {
      sequence: maxAbsDiff(ours.sequence, theirs.read("sequence").values),
      pooled: maxAbsDiff(ours.pooled, theirs.read("pooled").values),
      class_probs: maxAbsDiff(ours.class_probs, theirs.read("class_probs").values),
      mlm_logits: maxAbsDiff(ours.mlm_logits, theirs.read("mlm_logits").values),
    }
    return { byOutput, max: Math.max(...Object.values(byOutput)) }
  } finally {
    disposeBert(model)
    await rm(dir, { recursive: true, force: true })
  }
}
