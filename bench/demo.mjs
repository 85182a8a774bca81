#!/usr/bin/env node
// The embedded fine-tuning demo's targets (issue #4), measured on a fresh copy of pipelines/spam-finetune.yaml
// in a temporary project (nothing cached, no shared store):
//   1. the first run's wall-clock time                      target: under 10 minutes (on a 2-core machine)
//   2. the fine-tuned model's test accuracy                 target: at least 0.97; beside it, in the same run,
//      the bag-of-words baseline's accuracy and the frozen-encoder probe's (the references a careful user asks for)
//   3. a fully cached rerun's wall-clock time               target: under 2 seconds
//   4. a change to one train parameter reruns only train, evaluate and forgetting (and says so)
// It also prints the forgetting check's numbers and each stage's duration.
//
// Usage: node bench/demo.mjs [--keep]     (--keep leaves the temporary project for inspection)
// Needs a built CLI (`npm run build`). Takes as long as the demo: minutes.
import { spawnSync } from "node:child_process"
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { cpus, loadavg, tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const bin = join(repo, "bin", "pipeline.js")
const { values } = parseArgs({ options: { keep: { type: "boolean", default: false } } })

const dir = mkdtempSync(join(tmpdir(), "pipeline-demo-"))
mkdirSync(join(dir, "pipelines"))
mkdirSync(join(dir, ".git")) // the project root marker
copyFileSync(join(repo, "pipelines", "spam-finetune.yaml"), join(dir, "pipelines", "spam-finetune.yaml"))

/** Run the CLI with --json in the project; wall-clock seconds and the summary. */
const run = (args) => {
  const start = process.hrtime.bigint()
  const r = spawnSync(process.execPath, [bin, "run", "spam-finetune", "--json", ...args], {
    cwd: dir,
    encoding: "utf8",
    maxBuffer: 64 << 20,
    env: { ...process.env, NO_COLOR: "1" },
  })
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  if (r.status !== 0) throw new Error(`pipeline run ${args.join(" ")} failed (${r.status}):\n${r.stderr}`)
  return { seconds, summary: JSON.parse(r.stdout) }
}
const json = (path) => JSON.parse(readFileSync(join(dir, "outputs", "spam-finetune", path), "utf8"))
const verdict = (ok) => (ok ? "MET" : "NOT MET")
const fmt = (s) =>
  s >= 60 ? `${Math.floor(s / 60)}m${(s % 60).toFixed(0).padStart(2, "0")}s` : `${s.toFixed(2)}s`

console.log(
  `node ${process.version}, ${cpus().length} x ${cpus()[0]?.model}, load ${loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")}; project ${dir}`,
)
try {
  const first = run([])
  const evaluation = json("evaluate/metrics.json")
  const forgetting = json("forgetting/forgetting.json")
  const train = json("train/metrics.json")
  const pretrain = json("pretrain/metrics.json")
  const cached = run([])
  const changed = run(["--set", "train.learning_rate=0.0015"])
  const rerun = Object.entries(changed.summary.stages)
    .filter(([, s]) => s.status !== "cached")
    .map(([n]) => n)
    .sort()
  const expected = ["evaluate", "forgetting", "train"]

  console.log("\nstage durations, first run:")
  for (const [name, s] of Object.entries(first.summary.stages))
    console.log(`  ${name.padEnd(16)}${fmt(s.duration_ms / 1000).padStart(8)}  ${s.status}`)
  console.log(
    `\npretrain: ${pretrain.steps} steps, ${pretrain.examples_per_second} ex/s; validation masked accuracy ${pretrain.validation.accuracy.toFixed(4)}`,
  )
  console.log(`train: ${train.steps} steps, ${train.examples_per_second} ex/s, backend ${train.backend}`)
  const acc = evaluation.models.finetuned.accuracy
  console.log("\n| target | measured | reference (same run) | verdict |")
  console.log("| --- | --- | --- | --- |")
  console.log(`| first run < 10 min | ${fmt(first.seconds)} | | ${verdict(first.seconds < 600)} |`)
  console.log(
    `| test accuracy >= 0.97 | ${acc.toFixed(4)} (F1 ${evaluation.models.finetuned.f1_macro.toFixed(4)}) | bag-of-words baseline ${evaluation.baseline.accuracy.toFixed(4)}; frozen-encoder probe ${evaluation.models.frozen_encoder.accuracy.toFixed(4)} | ${verdict(acc >= 0.97)} |`,
  )
  console.log(`| cached rerun < 2 s | ${fmt(cached.seconds)} | | ${verdict(cached.seconds < 2)} |`)
  console.log(
    `| a train parameter reruns only train, evaluate, forgetting | reran ${rerun.join(", ")} in ${fmt(changed.seconds)} | | ${verdict(JSON.stringify(rerun) === JSON.stringify(expected))} |`,
  )
  console.log(
    `\nforgetting (${forgetting.metric}, max_drop ${forgetting.max_drop}): before ${forgetting.before.masked_accuracy.toFixed(4)}, after ${forgetting.after.masked_accuracy.toFixed(4)}, drop ${forgetting.drop.masked_accuracy.toFixed(4)}, passed ${forgetting.passed}`,
  )
} finally {
  if (!values.keep) rmSync(dir, { recursive: true, force: true })
}
