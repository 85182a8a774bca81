#!/usr/bin/env node
// Kill safety soak: runs a pipeline of many stages with the built CLI, kills the orchestrator with SIGKILL at
// random moments, and checks after each kill that
//   - `pipeline verify` finds no corrupt object (exit 0),
//   - the killed run's record, if it got written, is recognisably incomplete (`running`, no end time) and
//     `pipeline runs --json` reports it interrupted,
//   - the next `pipeline run` completes (exit 0),
//   - no process of the killed run is left alive once the next run has taken the project over,
//   - the workspace then is byte-identical to a clean run's: every out, the lock file, and no stray file.
//
//   node bench/soak-kill.mjs [--trials 50] [--seed N] [--stages 40] [--json]
//
// Each trial starts from a fresh copy of the project. Half the trials first complete a run with the other
// value of a param and then kill a rerun with this one (kills among restores, reruns and cached stages); a
// third of the trials kill twice in a row. Stages mix chains and fan-outs, file and folder outs, and short
// sleeps (lengths drawn from the seeded PRNG) so kills land while outs are half-written. Everything random
// comes from the seed, printed at the start; the kill moments depend on timing, so a rerun with the same
// seed makes the same pipeline and the same plan of kills, not the same interleavings.
import { spawn, spawnSync } from "node:child_process"
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

const { values } = parseArgs({
  options: {
    trials: { type: "string", default: "50" },
    seed: { type: "string", default: "20261129" },
    stages: { type: "string", default: "40" },
    json: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
})
const trials = Number(values.trials)
const seed = Number(values.seed)
const stageCount = Number(values.stages)
const bin = join(dirname(fileURLToPath(import.meta.url)), "..", "bin", "pipeline.js")
const log = (line) => {
  if (!values.json) process.stderr.write(`${line}\n`)
}

/** mulberry32: a small seeded PRNG, enough to draw a pipeline and kill moments. */
const prng = (s) => () => {
  s = (s + 0x6d2b79f5) | 0
  let t = Math.imul(s ^ (s >>> 15), 1 | s)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const random = prng(seed)
const int = (n) => Math.floor(random() * n)

/**
 * The pipeline: stage i reads up to two earlier stages' outs (a chain when it picks i-1, a fan-out when
 * many pick the same one), sometimes the param `v`, and writes a file or a folder of three files, line by
 * line with short sleeps between, so a kill can find it half-written. Every out is a pure function of the
 * inputs, so a clean run and a run after kills must agree byte for byte.
 */
const makePipeline = (n) => {
  const lines = ["params:", "  v: 1", "stages:"]
  const outs = []
  for (let i = 0; i < n; i++) {
    const name = `s${String(i).padStart(2, "0")}`
    const ups = i === 0 ? [] : [...new Set([i - 1 - int(Math.min(i, 3)), int(i)])].slice(0, 1 + int(2))
    const reads = ups.map((u) => outs[u])
    const sleep = (random() * 0.06).toFixed(2)
    const usesParam = random() < 0.3
    const folder = random() < 0.25
    const out = folder ? `out/${name}` : `out/${name}.txt`
    const input = reads.map((r) => (r.endsWith(".txt") ? `cat ${r}` : `cat ${r}/*`)).join("; ")
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a pipeline reference, not a JS placeholder
    const header = `echo ${name}${usesParam ? " v=${params.v}" : ""}`
    const body = folder
      ? `mkdir -p ${out} && for k in 1 2 3; do { ${header} $k; ${input || "true"}; } > ${out}/part$k; sleep ${sleep}; done`
      : `${header} > ${out}; sleep ${sleep}; { ${input || "true"}; } | cksum >> ${out}; echo end >> ${out}`
    lines.push(`  ${name}:`, `    cmd: ${JSON.stringify(body)}`)
    if (reads.length > 0) lines.push(`    deps: [${reads.join(", ")}]`)
    lines.push(`    outs: [${out}]`)
    outs.push(out)
  }
  // One stage reads the whole folder the others write into: a stray temp file there would change its output.
  lines.push(
    "  all:",
    `    cmd: "ls -a out | sort > listing.txt"`,
    "    deps: [out]",
    "    outs: [listing.txt]",
  )
  return `${lines.join("\n")}\n`
}

const run = (dir, args) => {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: dir,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  })
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr }
}

/** Every file under `dir` but pipeline's own state, with its bytes. */
const tree = (dir) => {
  const files = new Map()
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const abs = join(d, e.name)
      const rel = relative(dir, abs)
      if (rel === ".pipeline" || rel === "runs" || rel === ".git") continue
      if (e.isDirectory()) walk(abs)
      else files.set(rel, readFileSync(abs))
    }
  }
  walk(dir)
  return files
}

const differences = (want, got) => {
  const diffs = []
  for (const [path, bytes] of want) {
    const other = got.get(path)
    if (!other) diffs.push(`missing ${path}`)
    else if (!other.equals(bytes)) diffs.push(`differs ${path}`)
  }
  for (const path of got.keys()) if (!want.has(path)) diffs.push(`stray ${path}`)
  return diffs
}

/** Live processes whose environment says they belong to run `runId` (Linux /proc). */
const processesOf = (runId) => {
  const found = []
  for (const name of existsSync("/proc") ? readdirSync("/proc") : []) {
    if (!/^\d+$/.test(name)) continue
    try {
      const state = readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1]?.[0]
      if (state === "Z") continue
      const env = readFileSync(`/proc/${name}/environ`, "latin1").split("\0")
      if (env.includes(`PIPELINE_RUN_ID=${runId}`)) found.push(Number(name))
    } catch {}
  }
  return found
}

/** Start a run and SIGKILL it after `delayMs` (or when it ends, if sooner); gives the run ids it made. */
const killedRun = (dir, args, delayMs) =>
  new Promise((resolve) => {
    const before = new Set(existsSync(join(dir, "runs")) ? readdirSync(join(dir, "runs")) : [])
    const child = spawn(process.execPath, [bin, ...args], { cwd: dir, stdio: "ignore" })
    const timer = setTimeout(() => child.kill("SIGKILL"), delayMs)
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      const made = existsSync(join(dir, "runs"))
        ? readdirSync(join(dir, "runs")).filter((r) => !before.has(r))
        : []
      resolve({ killed: signal === "SIGKILL", code, runIds: made })
    })
  })

const scratch = mkdtempSync(join(tmpdir(), "pipeline-soak-"))
const template = join(scratch, "template")
mkdirSync(join(template, ".git"), { recursive: true })
writeFileSync(join(template, "pipeline.yaml"), makePipeline(stageCount))

const started = Date.now()
log(`soak-kill: seed ${seed}, ${trials} trials, ${stageCount + 1} stages, in ${scratch}`)

// The references: clean runs with each value of the param, and how long one takes.
const reference = {}
let cleanMs = 0
for (const v of [1, 2]) {
  const dir = join(scratch, `reference-${v}`)
  cpSync(template, dir, { recursive: true })
  const t0 = Date.now()
  const r = run(dir, ["run", "--set", `v=${v}`])
  if (v === 1) cleanMs = Date.now() - t0
  if (r.code !== 0) throw new Error(`the clean run failed (exit ${r.code}):\n${r.stderr}`)
  reference[v] = tree(dir)
}
log(`clean run: ${cleanMs} ms`)

const failures = []
const counts = { kills: 0, endedEarly: 0, interruptedRecords: 0 }
for (let t = 0; t < trials; t++) {
  const dir = join(scratch, `trial-${t}`)
  cpSync(template, dir, { recursive: true })
  const v = 1 + int(2)
  const prepared = random() < 0.5
  const kills = random() < 0.33 ? 2 : 1
  const fail = (what) => failures.push(`trial ${t} (v=${v}, prepared=${prepared}, kills=${kills}): ${what}`)
  if (prepared) {
    const r = run(dir, ["run", "--set", `v=${3 - v}`])
    if (r.code !== 0) fail(`the preparing run failed: ${r.stderr}`)
  }
  const killedIds = []
  for (let k = 0; k < kills; k++) {
    const delay = Math.floor(random() * cleanMs * 1.1)
    const { killed, runIds } = await killedRun(dir, ["run", "--set", `v=${v}`], delay)
    counts.kills += killed ? 1 : 0
    counts.endedEarly += killed ? 0 : 1
    if (!killed) continue
    killedIds.push(...runIds)
    const verify = run(dir, ["verify"])
    if (verify.code !== 0) fail(`verify after a kill at ${delay} ms exited ${verify.code}: ${verify.stderr}`)
    for (const id of runIds) {
      const record = join(dir, "runs", id, "run.json")
      if (!existsSync(record)) continue
      const r = JSON.parse(readFileSync(record, "utf8"))
      if (r.status === "running") {
        counts.interruptedRecords++
        if (r.ended_at !== null) fail(`run ${id} is running with an end time`)
        const listed = JSON.parse(run(dir, ["runs", "--json"]).stdout).runs.find((x) => x.id === id)
        if (listed?.interrupted !== true) fail(`pipeline runs does not say run ${id} was interrupted`)
      }
    }
  }
  const final = run(dir, ["run", "--set", `v=${v}`])
  if (final.code !== 0) fail(`the run after the kill exited ${final.code}: ${final.stderr}`)
  for (const id of killedIds) {
    const left = processesOf(id)
    if (left.length > 0)
      fail(`processes of killed run ${id} still alive after the next run: ${left.join(" ")}`)
  }
  const diffs = differences(reference[v], tree(dir))
  if (diffs.length > 0) fail(`workspace differs from a clean run: ${diffs.slice(0, 5).join(", ")}`)
  const again = run(dir, ["verify"])
  if (again.code !== 0) fail(`verify after completing exited ${again.code}`)
  if (!values.keep) rmSync(dir, { recursive: true, force: true })
  log(`trial ${t + 1}/${trials}: ${failures.length === 0 ? "ok" : `${failures.length} failures so far`}`)
}
const seconds = (Date.now() - started) / 1000
if (!values.keep) rmSync(scratch, { recursive: true, force: true })
const summary = {
  seed,
  trials,
  stages: stageCount + 1,
  kills: counts.kills,
  runs_that_ended_before_the_kill: counts.endedEarly,
  interrupted_records: counts.interruptedRecords,
  failures: failures.length,
  clean_run_ms: cleanMs,
  seconds,
}
if (values.json) process.stdout.write(`${JSON.stringify({ ...summary, failure_details: failures })}\n`)
else {
  for (const f of failures) log(`FAIL ${f}`)
  log(
    `${trials} trials, ${counts.kills} kills (${counts.endedEarly} runs ended before their kill), ` +
      `${counts.interruptedRecords} interrupted run records, ${failures.length} failures, ${seconds.toFixed(1)} s`,
  )
}
process.exitCode = failures.length === 0 ? 0 : 1
