#!/usr/bin/env node
// The wasm backend's matmuls, transposes and a training step, stock tfjs-backend-wasm against our kernels
// (src/compute/kernels). Stock wasm sends every transposed or batched matmul (all of backprop and attention)
// to a scalar loop; ours routes them to XNNPACK. Both columns come from the same process, the kernels swapped
// between them, alternating.
//
// Usage: node bench/matmul.mjs [--repeat 5] [--only matmul|small|transpose|encoder]
// Needs nothing built: the kernels are bundled from TypeScript on the fly with esbuild.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { build } from "esbuild"

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const { values } = parseArgs({
  options: { repeat: { type: "string", default: "5" }, only: { type: "string" } },
})
const repeat = Number(values.repeat)

const tmp = mkdtempSync(join(tmpdir(), "pipeline-bench-"))
await build({
  entryPoints: [join(repo, "src/compute/kernels/index.ts")],
  outfile: join(tmp, "kernels.mjs"),
  bundle: true,
  format: "esm",
  platform: "node",
  external: ["@tensorflow/*"],
  logLevel: "warning",
})
const { registerWasmKernels } = await import(pathToFileURL(join(tmp, "kernels.mjs")).href)
rmSync(tmp, { recursive: true, force: true })

const tf = await import("@tensorflow/tfjs")
await import("@tensorflow/tfjs-backend-wasm")
tf.env().set("PROD", true)
const swapped = ["BatchMatMul", "Transpose"]
const stock = swapped.map((k) => tf.getKernel(k, "wasm"))
registerWasmKernels(tf)
const ours = swapped.map((k) => tf.getKernel(k, "wasm"))
if (!(await tf.setBackend("wasm"))) throw new Error("the wasm backend did not start")

/** Put the stock or our BatchMatMul and Transpose on the wasm backend (setBackend runs their setup). */
const use = async (configs) => {
  for (const c of configs) {
    tf.unregisterKernel(c.kernelName, "wasm")
    tf.registerKernel(c)
  }
  await tf.setBackend("wasm")
}

/**
 * Fastest milliseconds of `f` over `repeat` runs after one warm-up: the minimum, not the median, because
 * other work on the machine only ever adds time.
 */
const fastest = (f) => {
  f()
  let best = Number.POSITIVE_INFINITY
  for (let i = 0; i < repeat; i++) {
    const start = performance.now()
    f()
    best = Math.min(best, performance.now() - start)
  }
  return best
}

/** Time `f` under the stock kernels and ours, alternating, `rounds` times each; the fastest of each. */
const stockVsOurs = async (f, rounds = 2) => {
  const best = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]
  for (let r = 0; r < rounds; r++)
    for (const [i, configs] of [stock, ours].entries()) {
      await use(configs)
      best[i] = Math.min(best[i], fastest(f))
    }
  return best
}

const seeded = (shape, seed) => tf.randomUniform(shape, -1, 1, "float32", seed)

/** GFLOP/s of one matMul (2·m·k·n per batch), stock and ours. */
const gflops = async (aShape, bShape, transposeA, transposeB) => {
  const a = seeded(aShape, 1)
  const b = seeded(bShape, 2)
  const out = tf.matMul(a, b, transposeA, transposeB)
  const k = transposeA ? aShape.at(-2) : aShape.at(-1)
  const flops = 2 * out.size * k
  out.dispose()
  const ms = await stockVsOurs(() => tf.matMul(a, b, transposeA, transposeB).dataSync())
  a.dispose()
  b.dispose()
  return ms.map((t) => flops / t / 1e6)
}

const pad = (s, n) => String(s).padEnd(n)
const fmt = (x) => x.toFixed(2)

const compare = async (title, cases) => {
  console.log(`\n${title}`)
  console.log(
    `${pad("case", 34)}${pad("a", 16)}${pad("b", 16)}${pad("stock GFLOP/s", 15)}${pad("ours", 10)}speed-up`,
  )
  for (const [name, a, b, ta, tb] of cases) {
    const [s, r] = await gflops(a, b, ta, tb)
    const shape = (x, t) => `[${x.join(",")}]${t ? "ᵀ" : ""}`
    console.log(
      `${pad(name, 34)}${pad(shape(a, ta), 16)}${pad(shape(b, tb), 16)}${pad(fmt(s), 15)}${pad(fmt(r), 10)}${fmt(r / s)}x`,
    )
  }
}

if (values.only === undefined || values.only === "matmul") {
  // A BERT-small-ish layer: batch 16, sequence 64, width 128, 4 heads of 32, feed-forward 512.
  await compare("matmul shapes of a training step (batch 16, seq 64, d 128, 4 heads, ff 512)", [
    ["dense forward (stock fast path)", [1024, 128], [128, 512], false, false],
    ["dense backprop dX = dY·Wᵀ", [1024, 512], [128, 512], false, true],
    ["dense backprop dW = Xᵀ·dY", [1024, 128], [1024, 512], true, false],
    ["dense on [batch, seq, d]", [16, 64, 128], [128, 512], false, false],
    ["attention scores Q·Kᵀ", [16, 4, 64, 32], [16, 4, 64, 32], false, true],
    ["attention context P·V", [16, 4, 64, 64], [16, 4, 64, 32], false, false],
    ["scores backprop dQ = dS·K", [16, 4, 64, 64], [16, 4, 64, 32], false, false],
    ["scores backprop dK = dSᵀ·Q", [16, 4, 64, 64], [16, 4, 64, 32], true, false],
    ["context backprop dP = dC·Vᵀ", [16, 4, 64, 32], [16, 4, 64, 32], false, true],
  ])
}

if (values.only === undefined || values.only === "small") {
  // Where the routing starts to pay: MIN_FAST_ROWS and MIN_FAST_WORK in src/compute/kernels/batch-matmul.ts.
  const small = []
  for (const n of [4, 8, 12, 16, 24, 32])
    small.push([`64 batches of ${n}x${n}x${n}, Bᵀ`, [64, n, n], [64, n, n], false, true])
  for (const m of [1, 2, 4, 8]) small.push([`${m} rows x [256,256]ᵀ`, [m, 256], [256, 256], false, true])
  await compare("small products (routing thresholds)", small)
}

if (values.only === undefined || values.only === "transpose") {
  console.log("\ntranspose")
  console.log(`${pad("shape", 22)}${pad("perm", 16)}${pad("stock ms", 12)}${pad("ours", 10)}speed-up`)
  for (const [shape, perm] of [
    [
      [1024, 384],
      [1, 0],
    ],
    [
      [16, 64, 4, 32],
      [0, 2, 1, 3],
    ],
    [
      [16, 64, 3, 4, 32],
      [2, 0, 3, 1, 4],
    ],
  ]) {
    const x = seeded(shape, 5)
    const [s, r] = await stockVsOurs(() => tf.transpose(x, perm).dataSync())
    x.dispose()
    console.log(
      `${pad(`[${shape}]`, 22)}${pad(`[${perm}]`, 16)}${pad(fmt(s), 12)}${pad(fmt(r), 10)}${fmt(s / r)}x`,
    )
  }
}

if (values.only === undefined || values.only === "encoder") {
  // A 2-layer toy encoder: embedding, 2 x (self-attention + feed-forward, post-LayerNorm), mean-pool, classify.
  const cfg = { vocab: 1000, d: 128, heads: 4, ff: 512, layers: 2, seq: 64, batch: 16, classes: 4 }
  const dh = cfg.d / cfg.heads
  let seed = 10
  const param = (shape) => tf.variable(tf.randomNormal(shape, 0, 0.05, "float32", seed++))
  const params = {
    emb: param([cfg.vocab, cfg.d]),
    pos: param([cfg.seq, cfg.d]),
    out: param([cfg.d, cfg.classes]),
    layers: Array.from({ length: cfg.layers }, () => ({
      qkv: param([cfg.d, 3 * cfg.d]),
      o: param([cfg.d, cfg.d]),
      f1: param([cfg.d, cfg.ff]),
      f2: param([cfg.ff, cfg.d]),
      g1: tf.variable(tf.ones([cfg.d])),
      g2: tf.variable(tf.ones([cfg.d])),
    })),
  }
  const layerNorm = (x, g) => {
    const { mean, variance } = tf.moments(x, -1, true)
    return tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g)
  }
  const rows = cfg.batch * cfg.seq
  const forward = (ids) => {
    let x = tf.add(tf.reshape(tf.gather(params.emb, ids), [cfg.batch, cfg.seq, cfg.d]), params.pos)
    for (const l of params.layers) {
      const qkv = tf.reshape(tf.matMul(tf.reshape(x, [rows, cfg.d]), l.qkv), [
        cfg.batch,
        cfg.seq,
        3,
        cfg.heads,
        dh,
      ])
      const [q, k, v] = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))
      const p = tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)))
      const ctx = tf.reshape(tf.transpose(tf.matMul(p, v), [0, 2, 1, 3]), [rows, cfg.d])
      x = layerNorm(tf.add(x, tf.reshape(tf.matMul(ctx, l.o), [cfg.batch, cfg.seq, cfg.d])), l.g1)
      const h = tf.relu(tf.matMul(tf.reshape(x, [rows, cfg.d]), l.f1))
      x = layerNorm(tf.add(x, tf.reshape(tf.matMul(h, l.f2), [cfg.batch, cfg.seq, cfg.d])), l.g2)
    }
    return tf.matMul(tf.mean(x, 1), params.out)
  }
  const ids = tf.randomUniform([rows], 0, cfg.vocab, "int32", 3)
  const labels = tf.oneHot(tf.randomUniform([cfg.batch], 0, cfg.classes, "int32", 4), cfg.classes)
  const optimizer = tf.train.sgd(0.01)
  const step = () => {
    const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(labels, forward(ids)), true)
    loss.dataSync()
    loss.dispose()
  }
  console.log(`\n2-layer toy encoder training step (${JSON.stringify(cfg)})`)
  // Stock wasm cannot run this step at all (no UnsortedSegmentSum): "stock" keeps our scatter-add.
  const [stockMs, oursMs] = await stockVsOurs(step, 1)
  await tf.setBackend("cpu")
  const cpuMs = fastest(step)
  const exs = (ms) => ((cfg.batch * 1000) / ms).toFixed(1)
  console.log(`cpu backend                                        ${exs(cpuMs)} ex/s`)
  console.log(`wasm, stock matmul and transpose + our scatter-add ${exs(stockMs)} ex/s`)
  console.log(
    `wasm, our kernels                                  ${exs(oursMs)} ex/s  (${(stockMs / oursMs).toFixed(2)}x)`,
  )
}
