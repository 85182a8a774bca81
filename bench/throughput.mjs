#!/usr/bin/env node
// Training throughput of the built-in encoder beside PyTorch on the CPU, same architecture, same step, in one
// run; and first, the numerics: the encoder's outputs against an independent PyTorch BERT on the same
// safetensors weights (bench/torch-parity.ts, bench/torch_bert.py).
//
// The step: classification, forward with dropout + backward + Adam, on a 2-layer encoder (d 128, 4 heads,
// feed-forward 512, vocabulary 8000), sequence 128, batch 32, random tokens. Configurations:
//   wasm 1 thread        TensorFlow.js wasm + the project's kernels and heap cache, in this process
//   wasm data-parallel   the same in N worker threads, the batch split between them (src/parallel/)
//   ..., all rows        the same two with the encoder's last block computed for every token (allRows), as
//                        PyTorch's step computes it; by default the last block computes only the [CLS] rows
//                        the classifier reads (src/model/encoder.ts, encodeRows), which gives the same loss
//                        and gradients with less arithmetic. --no-all-rows leaves these two out.
//   torch 1 thread       Debian's python3-torch, torch.set_num_threads(1)
//   torch 2 threads      OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE (the default spin-wait collapses when the
//                        two cores are shared with other work)
// Each is timed in rounds, the configurations taking turns, so that load from other work falls on all of them.
// A round prints its median step after warm-up; the summary takes each configuration's fastest step over all
// rounds (other work only ever adds time, so the fastest step is the closest to an idle machine), with the
// medians beside. The ratio is wasm data-parallel against the faster PyTorch configuration, for the
// restricted last block and, like for like, for the full one. CPU time per step (all threads) is
// printed beside: where other sessions keep the cores busy, Linux's autogroup scheduling shares the CPU between
// sessions, not threads, so two workers or two threads then get no more CPU than one, and only an idle machine
// shows what the second core buys.
//
// Usage: node bench/throughput.mjs [--rounds 2] [--steps 5] [--warmup 2] [--workers 2] [--batch 32]
//          [--seq 128] [--python /usr/bin/python3] [--only parity|throughput] [--torch-spin] [--no-all-rows]
//   --torch-spin adds torch with two threads and OpenMP's default (spinning) wait policy.
//
// esbuild bundles the sources (and the data-parallel worker) into a temp folder first: no build needed.
import { execFile } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { build } from "esbuild"
import { rng } from "./rng.mjs"

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const { values } = parseArgs({
  allowNegative: true,
  options: {
    rounds: { type: "string", default: "2" },
    steps: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    workers: { type: "string", default: "2" },
    batch: { type: "string", default: "32" },
    seq: { type: "string", default: "128" },
    python: { type: "string", default: "/usr/bin/python3" },
    only: { type: "string" },
    "torch-spin": { type: "boolean", default: false },
    "all-rows": { type: "boolean", default: true },
  },
})
const rounds = Number(values.rounds)
const steps = Number(values.steps)
const warmup = Number(values.warmup)
const workers = Number(values.workers)
const batch = Number(values.batch)
const seq = Number(values.seq)
const python = values.python

// Inside node_modules, so the bundles' external imports (tfjs, effect) resolve.
mkdirSync(join(repo, "node_modules/.cache"), { recursive: true })
const tmp = mkdtempSync(join(repo, "node_modules/.cache/pipeline-bench-"))
const common = {
  bundle: true,
  format: "esm",
  platform: "node",
  external: ["@tensorflow/*", "effect"],
  logLevel: "warning",
}
await build({
  ...common,
  stdin: {
    contents:
      'export * from "./src/model/index.ts"\n' +
      'export * from "./src/parallel/index.ts"\n' +
      'export { startWasm } from "./src/compute/wasm.ts"\n' +
      'export { loadTf } from "./src/compute/load.ts"\n' +
      'export { torchParity, torchVersion } from "./bench/torch-parity.ts"\n',
    resolveDir: repo,
    loader: "ts",
  },
  outfile: join(tmp, "lib.mjs"),
})
const script = join(repo, "bench/torch_bert.py")
await build({
  ...common,
  entryPoints: [join(repo, "src/parallel/worker.ts")],
  outfile: join(tmp, "worker.mjs"),
})
const lib = await import(pathToFileURL(join(tmp, "lib.mjs")).href)
const workerUrl = pathToFileURL(join(tmp, "worker.mjs"))
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }))

const tf = await lib.loadTf()
const load = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")
console.log(`node ${process.version}, ${cpus().length} x ${cpus()[0]?.model}, load ${load()}`)
const torch = lib.torchVersion(python)
if (torch === undefined)
  console.log(`${python} has no torch: apt-get install python3-torch; PyTorch parts skipped`)

if (values.only === undefined || values.only === "parity") {
  console.log(
    `\nparity with PyTorch ${torch ?? "(skipped)"}: max |ours - torch| on a random 2-layer BERT (d 32)`,
  )
  if (torch !== undefined)
    for (const backend of ["cpu", "wasm"]) {
      if (backend === "wasm") {
        const started = await lib.startWasm(tf)
        if (!started.ok) throw new Error(started.reason)
      } else if (!(await tf.setBackend("cpu"))) throw new Error("the cpu backend did not start")
      const { byOutput, max } = await lib.torchParity({ python, script })
      const parts = Object.entries(byOutput)
        .map(([k, v]) => `${k} ${v.toExponential(1)}`)
        .join(", ")
      console.log(
        `  ${backend.padEnd(5)} ${max.toExponential(2)}  ${max < 1e-4 ? "ok" : "OVER 1e-4"}  (${parts})`,
      )
    }
}

if (values.only !== undefined && values.only !== "throughput") process.exit(0)

const config = lib.bertConfig({
  vocab_size: 8000,
  hidden_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 512,
  max_position_embeddings: Math.max(128, seq),
  num_labels: 2,
})
const configFile = join(tmp, "config.json")
writeFileSync(configFile, JSON.stringify(lib.configToHf(config)))

const rand = rng(7)
const host = {
  rows: batch,
  seq,
  inputIds: Int32Array.from({ length: batch * seq }, (_, i) =>
    i % seq === 0 ? 2 : 5 + rand(config.vocab_size - 5),
  ),
  labels: Int32Array.from({ length: batch }, () => rand(2)),
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const exs = (ms) => (batch * 1000) / ms

/**
 * Time `step` (sync or async): warm-up steps, then `steps` timed ones, wall-clock and CPU time (this process,
 * worker threads included).
 */
const timeSteps = async (step) => {
  const times = []
  const cpuTimes = []
  for (let i = 0; i < warmup + steps; i++) {
    const start = performance.now()
    const cpuStart = process.cpuUsage()
    await step(i)
    const cpu = process.cpuUsage(cpuStart)
    if (i < warmup) continue
    times.push(performance.now() - start)
    cpuTimes.push((cpu.user + cpu.system) / 1000)
  }
  return { times, cpuTimes }
}

const wasmInProcess = (allRows) => async () => {
  const started = await lib.startWasm(tf)
  if (!started.ok) throw new Error(started.reason)
  const model = lib.createBert(config, { seed: 1 })
  const input = {
    inputIds: tf.tensor2d(host.inputIds, [batch, seq], "int32"),
    labels: tf.tensor1d(host.labels, "int32"),
  }
  const optimizer = tf.train.adam(1e-4)
  const vars = lib.trainableVariables(model)
  const timed = await timeSteps((i) => {
    const loss = optimizer.minimize(
      () => lib.classificationLoss(model, input, { dropoutSeed: i, allRows }),
      true,
      vars,
    )
    loss.dataSync()
    loss.dispose()
  })
  tf.dispose([input.inputIds, input.labels])
  optimizer.dispose()
  lib.disposeBert(model)
  return timed
}

const wasmParallel = (allRows) => async () => {
  const trainer = await lib.createDataParallelTrainer({
    workers,
    allRows,
    config,
    seed: 1,
    lossKind: "classification",
    optimizer: { kind: "adam", learningRate: 1e-4 },
    workerUrl,
  })
  try {
    return await timeSteps((i) => trainer.step(host, { dropoutSeed: i }))
  } finally {
    await trainer.close()
  }
}

const torchRun = (threads, env) => () =>
  new Promise((res, rej) =>
    execFile(
      python,
      [
        script,
        "train",
        configFile,
        "--batch",
        `${batch}`,
        "--seq",
        `${seq}`,
        "--steps",
        `${steps}`,
        "--warmup",
        `${warmup}`,
      ],
      { env: { ...process.env, OMP_NUM_THREADS: `${threads}`, ...env } },
      (error, stdout, stderr) => {
        if (error !== null) return rej(new Error(`torch_bert.py train failed: ${stderr || error.message}`))
        const r = JSON.parse(stdout.trim().split("\n").at(-1))
        res({
          times: r.step_ms,
          cpuTimes: r.cpu_step_ms,
          note: `BLAS ${r.blas.split("/").slice(-2).join("/")}`,
        })
      },
    ),
  )

const allRows = values["all-rows"]
const configs = [
  { name: "wasm 1 thread", run: wasmInProcess(false), kind: "wasm" },
  ...(allRows ? [{ name: "wasm 1 thread, all rows", run: wasmInProcess(true), kind: "wasm all rows" }] : []),
  { name: `wasm data-parallel, ${workers} workers`, run: wasmParallel(false), kind: "parallel" },
  ...(allRows
    ? [
        {
          name: `wasm data-parallel, ${workers} workers, all rows`,
          run: wasmParallel(true),
          kind: "parallel all rows",
        },
      ]
    : []),
  ...(torch === undefined
    ? []
    : [
        { name: "torch 1 thread", run: torchRun(1, {}), kind: "torch" },
        { name: "torch 2 threads, PASSIVE", run: torchRun(2, { OMP_WAIT_POLICY: "PASSIVE" }), kind: "torch" },
        ...(values["torch-spin"]
          ? [{ name: "torch 2 threads, spin-wait", run: torchRun(2, {}), kind: "torch" }]
          : []),
      ]),
]

console.log(
  `\ntraining step: classification, 2 layers, d 128, 4 heads, ff 512, vocab 8000, seq ${seq}, batch ${batch}, Adam, dropout 0.1`,
)
console.log(
  `${steps} timed steps after ${warmup} warm-up; ${rounds} rounds, the configurations in turn; each round's median`,
)
const all = new Map(configs.map((c) => [c.name, { kind: c.kind, times: [], cpuTimes: [] }]))
for (let round = 1; round <= rounds; round++) {
  for (const c of configs) {
    const { times, cpuTimes, note } = await c.run()
    const acc = all.get(c.name)
    acc.times.push(...times)
    acc.cpuTimes.push(...cpuTimes)
    const ms = median(times)
    console.log(
      `  round ${round}  ${c.name.padEnd(40)} ${exs(ms).toFixed(1).padStart(6)} ex/s  ` +
        `(${ms.toFixed(0)} ms/step, CPU ${median(cpuTimes).toFixed(0)} ms, load ${load()})${note === undefined ? "" : `  ${note}`}`,
    )
  }
}

console.log("\nover all rounds: fastest step (its CPU time, all threads); median step")
const summary = new Map()
for (const [name, { kind, times, cpuTimes }] of all) {
  const i = times.indexOf(Math.min(...times))
  summary.set(name, { kind, best: times[i], median: median(times) })
  console.log(
    `  ${name.padEnd(40)} ${exs(times[i]).toFixed(1).padStart(6)} ex/s (${times[i].toFixed(0)} ms, CPU ${cpuTimes[i].toFixed(0)} ms)` +
      `; median ${exs(median(times)).toFixed(1)} ex/s`,
  )
}
const fastest = (kind, key) =>
  [...summary.entries()].filter(([, v]) => v.kind === kind).sort(([, a], [, b]) => a[key] - b[key])[0]
const torchBest = fastest("torch", "best")
if (torchBest !== undefined) {
  const ratio = (kind, key) => (fastest("torch", key)[1][key] / fastest(kind, key)[1][key]).toFixed(2)
  console.log(
    `\nratio to the faster PyTorch (${torchBest[0]}), fastest steps: wasm data-parallel ${ratio("parallel", "best")}x, ` +
      `wasm 1 thread ${ratio("wasm", "best")}x; medians: ${ratio("parallel", "median")}x, ${ratio("wasm", "median")}x`,
  )
  if (allRows)
    console.log(
      `  with the last block on all rows, as PyTorch computes it, fastest steps: wasm data-parallel ` +
        `${ratio("parallel all rows", "best")}x, wasm 1 thread ${ratio("wasm all rows", "best")}x; medians: ` +
        `${ratio("parallel all rows", "median")}x, ${ratio("wasm all rows", "median")}x`,
    )
}
