#!/usr/bin/env node
// Training throughput of the BERT encoder (src/model) at a few sizes, to pick what the demo can train in
// minutes on two cores: examples per second of a full training step (forward, backward, Adam update) for
// the classification task and for masked-LM (15% of tokens masked, logits only at those), plus evaluation
// throughput. Then two layout questions the encoder's code depends on:
//   - Linear weights stored [out, in] (PyTorch's layout, matMul with transposeB) against [in, out];
//   - the embedding gradient as a ScatterNd (gatherRows) against tf.gather's UnsortedSegmentSum.
//
// Usage: node bench/encoder-size.mjs [--backends wasm,cpu] [--sizes 64x2x64,64x2x128,128x2x64,128x2x128]
//          [--batch 32] [--vocab 8000] [--steps 5] [--cpu-sizes 64x2x64] [--only train|layout]
//   A size is hidden x layers x seq; heads are hidden/32, the feed-forward 4 x hidden.
//   The wasm backend gets the project's kernels (src/compute/kernels) and heap cache when they are there, unless
//   --stock-wasm: the encoder needs none of them (its embedding gradient is a ScatterNd, see gatherRows).
//
// esbuild bundles src/model (and the kernels) into a temp file first, so the bench runs without a build.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { build } from "esbuild"
import { rng } from "./rng.mjs"

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const { values } = parseArgs({
  options: {
    backends: { type: "string", default: "wasm,cpu" },
    sizes: { type: "string", default: "64x2x64,64x2x128,128x2x64,128x2x128" },
    "cpu-sizes": { type: "string", default: "64x2x64" },
    batch: { type: "string", default: "32" },
    vocab: { type: "string", default: "8000" },
    steps: { type: "string", default: "5" },
    only: { type: "string" },
    "stock-wasm": { type: "boolean", default: false },
  },
})
const batch = Number(values.batch)
const vocab = Number(values.vocab)
const steps = Number(values.steps)
const parseSizes = (s) =>
  s.split(",").map((x) => {
    const [d, layers, seq] = x.split("x").map(Number)
    return { d, layers, seq }
  })

const kernelsEntry = join(repo, "src/compute/kernels/index.ts")
const haveKernels = existsSync(kernelsEntry) && !values["stock-wasm"]
// Inside node_modules, so the bundle's external imports (tfjs, effect) resolve.
mkdirSync(join(repo, "node_modules/.cache"), { recursive: true })
const tmp = mkdtempSync(join(repo, "node_modules/.cache/pipeline-bench-"))
await build({
  stdin: {
    contents:
      'export * from "./src/model/index.ts"\n' +
      (haveKernels
        ? 'export { registerWasmKernels } from "./src/compute/kernels/index.ts"\n' +
          'export { cacheHeapBlocks } from "./src/compute/heap-cache.ts"\n'
        : ""),
    resolveDir: repo,
    loader: "ts",
  },
  outfile: join(tmp, "model.mjs"),
  bundle: true,
  format: "esm",
  platform: "node",
  external: ["@tensorflow/*", "effect"],
  logLevel: "warning",
})
const model = await import(pathToFileURL(join(tmp, "model.mjs")).href)
rmSync(tmp, { recursive: true, force: true })

const tf = await import("@tensorflow/tfjs")
await import("@tensorflow/tfjs-backend-wasm")
tf.env().set("PROD", true)
if (haveKernels) model.registerWasmKernels(tf)

/** Median milliseconds of `f` over `n` runs after `warm` warm-up runs. */
const median = (f, n = steps, warm = 2) => {
  for (let i = 0; i < warm; i++) f()
  const times = []
  for (let i = 0; i < n; i++) {
    const start = performance.now()
    f()
    times.push(performance.now() - start)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]
}

const pad = (s, n) => String(s).padEnd(n)

const trainRow = (backend, size) => {
  // The cpu backend is an order of magnitude slower: a reference point, not a candidate.
  const time = (f) => (backend === "cpu" ? median(f, 2, 1) : median(f))
  const { d, layers, seq } = size
  const config = model.bertConfig({
    vocab_size: vocab,
    hidden_size: d,
    num_hidden_layers: layers,
    num_attention_heads: Math.max(1, d / 32),
    intermediate_size: 4 * d,
    max_position_embeddings: Math.max(128, seq),
    num_labels: 2,
  })
  const m = model.createBert(config, { seed: 1 })
  const rand = rng(7)
  const ids = tf.tensor2d(
    Array.from({ length: batch }, () => [2, ...Array.from({ length: seq - 1 }, () => 5 + rand(vocab - 5))]),
    undefined,
    "int32",
  )
  const labels = tf.tensor1d(
    Array.from({ length: batch }, () => rand(2)),
    "int32",
  )
  const positions = []
  for (let i = 0; i < batch * seq; i++) if (rand(100) < 15) positions.push(i)
  const mlmBatch = {
    inputIds: ids,
    positions: Int32Array.from(positions),
    targets: tf.tensor1d(
      positions.map(() => rand(vocab)),
      "int32",
    ),
  }
  const clsBatch = { inputIds: ids, labels }
  const optimizer = tf.train.adam(1e-4)
  const vars = model.trainableVariables(m)
  let step = 0
  const train = (loss) => () => {
    const l = optimizer.minimize(() => loss({ dropoutSeed: step++ }), true, vars)
    l.dataSync()
    l.dispose()
  }
  const clsMs = time(train((o) => model.classificationLoss(m, clsBatch, o)))
  const mlmMs = time(train((o) => model.mlmLoss(m, mlmBatch, o)))
  const evalMs = time(() => {
    const p = model.classify(m, clsBatch)
    p.dataSync()
    p.dispose()
  })
  const counts = model.countParams(m)
  // The wasm heap never shrinks: its size after the steps is the peak the allocator needed.
  const heap =
    tf.backend().wasm === undefined ? "-" : `${Math.round(tf.backend().wasm.HEAPU8.length / 2 ** 20)}`
  tf.dispose([ids, labels, mlmBatch.targets])
  optimizer.dispose()
  model.disposeBert(m)
  const exs = (ms) => ((batch * 1000) / ms).toFixed(1)
  console.log(
    `${pad(backend, 8)}${pad(`${d}x${layers}x${seq}`, 12)}${pad((counts.total / 1e6).toFixed(2), 9)}` +
      `${pad(`${exs(clsMs)} (${clsMs.toFixed(0)} ms)`, 22)}${pad(`${exs(mlmMs)} (${mlmMs.toFixed(0)} ms)`, 22)}` +
      `${pad(exs(evalMs), 11)}${heap}`,
  )
}

console.log(
  `node ${process.version}, ${cpus().length} x ${cpus()[0]?.model}, load ${loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")}; project wasm kernels: ${haveKernels ? "yes" : "no"}`,
)

if (values.only === undefined || values.only === "train") {
  console.log(`\ntraining step, batch ${batch}, vocab ${vocab}, Adam; examples/s (median step time)`)
  console.log(
    `${pad("backend", 8)}${pad("d x L x T", 12)}${pad("params M", 9)}${pad("classification", 22)}` +
      `${pad("masked LM (15%)", 22)}${pad("eval ex/s", 11)}wasm heap MiB`,
  )
  for (const backend of values.backends.split(",")) {
    if (!(await tf.setBackend(backend))) throw new Error(`the ${backend} backend did not start`)
    // As startWasm does: without it the heap grows by hundreds of MiB per step at seq 128 (heap-cache.ts).
    if (backend === "wasm" && haveKernels) model.cacheHeapBlocks(tf.backend().wasm)
    for (const size of parseSizes(backend === "cpu" ? values["cpu-sizes"] : values.sizes))
      trainRow(backend, size)
  }
}

if (values.only === undefined || values.only === "layout") {
  console.log("\nlayout questions, forward + backward, median ms")
  for (const backend of values.backends.split(",")) {
    if (!(await tf.setBackend(backend))) throw new Error(`the ${backend} backend did not start`)
    for (const [rows, inp, out] of [
      [batch * 128, 64, 256],
      [batch * 128, 256, 64],
      [batch * 128, 128, 128],
    ]) {
      const x = tf.randomNormal([rows, inp], 0, 1, "float32", 1)
      const wOutIn = tf.variable(tf.randomNormal([out, inp], 0, 0.02, "float32", 2))
      const wInOut = tf.variable(tf.transpose(wOutIn))
      const dy = tf.randomNormal([rows, out], 0, 1, "float32", 3)
      const run = (w, transposeB) => () => {
        const { value, grads } = tf.variableGrads(
          () => tf.sum(tf.mul(tf.matMul(x, w, false, transposeB), dy)),
          [w],
        )
        value.dataSync()
        tf.dispose([value, ...Object.values(grads)])
      }
      const a = median(run(wOutIn, true))
      const b = median(run(wInOut, false))
      console.log(
        `${pad(backend, 8)}linear [${rows},${inp}] -> ${out}: W [out,in] + transposeB ${a.toFixed(1)} ms, W [in,out] ${b.toFixed(1)} ms`,
      )
      tf.dispose([x, wOutIn, wInOut, dy])
    }
    for (const v of [vocab, 21128]) {
      const table = tf.variable(tf.randomNormal([v, 64], 0, 0.02, "float32", 4))
      const rand = rng(3)
      const idx = tf.tensor1d(
        Array.from({ length: batch * 128 }, () => rand(v)),
        "int32",
      )
      const dy = tf.randomNormal([batch * 128, 64], 0, 1, "float32", 5)
      const run = (gather) => () => {
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(gather(table, idx), dy)), [table])
        value.dataSync()
        tf.dispose([value, ...Object.values(grads)])
      }
      const scatter = median(run(model.gatherRows))
      let stock = "n/a (no UnsortedSegmentSum kernel)"
      try {
        stock = `${median(run((t, i) => tf.gather(t, i))).toFixed(1)} ms`
      } catch {}
      console.log(
        `${pad(backend, 8)}embedding [${v},64], ${batch * 128} ids: gatherRows (ScatterNd) ${scatter.toFixed(1)} ms, tf.gather ${stock}`,
      )
      tf.dispose([table, idx, dy])
    }
  }
}
