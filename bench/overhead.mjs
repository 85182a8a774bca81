#!/usr/bin/env node
// Orchestration overhead: pipelines of 10, 100 and 1,000 `cat` stages (a chain and a fan-out), each run from
// scratch `--repeat` times (fresh folders each time; make first on every other one), then a fully cached rerun
// and a rerun after one leaf's input changed — beside GNU make on the same DAG and a Node process that only
// stats the same files (the floor for any Node tool). Medians; ratios come from the same run.
//
// First runs are also measured in CPU time (user + system, of every process involved): on a machine shared with
// other work, wall-clock ratios move with the load, CPU ratios much less. The load average is printed too.
//
// Usage: node bench/overhead.mjs [--sizes 10,100,1000] [--shapes chain,fanout] [--repeat 5]
// Needs `make` on PATH and a built CLI (`npm run build`). On ext4 without a journal, start it five minutes after
// any large removal of files (a previous run's cleanup included): see `leftovers` below.
import { execFileSync, spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { availableParallelism, loadavg, tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const bin = join(repo, "bin", "pipeline.js")
const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "10,100,1000" },
    shapes: { type: "string", default: "chain,fanout" },
    repeat: { type: "string", default: "5" },
  },
})
const sizes = values.sizes.split(",").map(Number)
const shapes = values.shapes.split(",")
const repeat = Number(values.repeat)
const jobs = availableParallelism()
const loads = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")
const loadBefore = loads()

/**
 * CPU milliseconds (user + system) used so far by this process's children that have been waited for, their
 * own children included (Linux: /proc/self/stat); undefined elsewhere. Unlike wall-clock time, this barely
 * moves when other work shares the machine.
 */
const childCpuMs = () => {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return ((Number(fields[13]) + Number(fields[14])) * 1000) / ticksPerSecond
  } catch {
    return undefined
  }
}
const ticksPerSecond = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** CPU milliseconds of `run()`'s children, or undefined where that cannot be read. */
const cpuOf = (run) => {
  const before = childCpuMs()
  run()
  const after = childCpuMs()
  return before === undefined || after === undefined ? undefined : after - before
}

/** Wall-clock milliseconds of a command run in `cwd` (it must succeed). */
const time = (cmd, args, cwd) => {
  const start = process.hrtime.bigint()
  const r = spawnSync(cmd, args, {
    cwd,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  })
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed in ${cwd}: ${r.stderr}`)
  return ms
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** Stage i reads its own input in/i.txt and, in a chain, the previous stage's out. */
const generate = (dir, n, shape) => {
  mkdirSync(join(dir, "in"), { recursive: true })
  mkdirSync(join(dir, "out"), { recursive: true })
  mkdirSync(join(dir, ".git"))
  const stages = []
  const rules = ["all: " + Array.from({ length: n }, (_, i) => `out/${i}.txt`).join(" "), ""]
  const statFiles = []
  for (let i = 0; i < n; i++) {
    writeFileSync(join(dir, "in", `${i}.txt`), `input ${i}\n`)
    const deps = [`in/${i}.txt`, ...(shape === "chain" && i > 0 ? [`out/${i - 1}.txt`] : [])]
    stages.push(
      `  s${i}:\n    cmd: cat ${deps.join(" ")} > out/${i}.txt\n    deps: [${deps.join(", ")}]\n    outs: [out/${i}.txt]`,
    )
    rules.push(`out/${i}.txt: ${deps.join(" ")}\n\tcat ${deps.join(" ")} > out/${i}.txt\n`)
    statFiles.push(...deps, `out/${i}.txt`)
  }
  writeFileSync(join(dir, "pipeline.yaml"), `stages:\n${stages.join("\n")}\n`)
  writeFileSync(join(dir, "Makefile"), rules.join("\n"))
  writeFileSync(
    join(dir, "stat-floor.mjs"),
    `import { statSync } from "node:fs"\nfor (const f of ${JSON.stringify(statFiles)}) statSync(f)\n`,
  )
}

const rows = []
/**
 * The benchmark's folders, removed only when every measurement is done. On a file system that avoids reusing
 * recently freed inodes (ext4 without a journal, as on the machine the README's figures come from), creating a
 * file right after thousands were deleted scans past every one of them: removing one size's folders made the
 * next size's first run, which creates twice the files make does (each out, and its copy in the store), pay
 * for the cleanup of the one before.
 */
const leftovers = []
for (const shape of shapes) {
  for (const n of sizes) {
    const row = { shape, n }
    // First runs `repeat` times, each on fresh folders, make first on every other one: one first run moved with
    // the machine's load by more than the difference being measured.
    const first = { ours: [], make: [], cpuOurs: [], cpuMake: [] }
    let ours
    let make
    for (let k = 0; k < repeat; k++) {
      ours = mkdtempSync(join(tmpdir(), `bench-${shape}-${n}-`))
      make = mkdtempSync(join(tmpdir(), `bench-make-${shape}-${n}-`))
      leftovers.push(ours, make)
      generate(ours, n, shape)
      generate(make, n, shape)
      const runOurs = () =>
        first.cpuOurs.push(
          cpuOf(() => first.ours.push(time(process.execPath, [bin, "run", "--jobs", String(jobs)], ours))),
        )
      const runMake = () =>
        first.cpuMake.push(cpuOf(() => first.make.push(time("make", ["-s", `-j${jobs}`], make))))
      if (k % 2 === 0) {
        runOurs()
        runMake()
      } else {
        runMake()
        runOurs()
      }
    }
    row.firstOurs = median(first.ours)
    row.firstMake = median(first.make)
    row.cpuOurs = first.cpuOurs.includes(undefined) ? undefined : median(first.cpuOurs)
    row.cpuMake = first.cpuMake.includes(undefined) ? undefined : median(first.cpuMake)
    const leaf = `in/${n - 1}.txt`
    const cachedOurs = []
    const cachedMake = []
    const floor = []
    for (let k = 0; k < repeat; k++) {
      cachedOurs.push(time(process.execPath, [bin, "run", "--jobs", String(jobs)], ours))
      cachedMake.push(time("make", ["-s", `-j${jobs}`], make))
      floor.push(time(process.execPath, ["stat-floor.mjs"], ours))
    }
    row.cachedOurs = median(cachedOurs)
    row.cachedMake = median(cachedMake)
    row.floor = median(floor)
    const leafOurs = []
    const leafMake = []
    for (let k = 0; k < repeat; k++) {
      writeFileSync(join(ours, leaf), `input changed ${k}\n`)
      writeFileSync(join(make, leaf), `input changed ${k}\n`)
      leafOurs.push(time(process.execPath, [bin, "run", "--jobs", String(jobs)], ours))
      leafMake.push(time("make", ["-s", `-j${jobs}`], make))
    }
    row.leafOurs = median(leafOurs)
    row.leafMake = median(leafMake)
    rows.push(row)
    process.stderr.write(`done: ${shape} ${n}\n`)
  }
}

for (const dir of leftovers) rmSync(dir, { recursive: true, force: true })

const f = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`)
const x = (a, b) => `${(a / b).toFixed(2)}x`
const nodeVersion = process.version
const makeVersion = execFileSync("make", ["--version"]).toString().split("\n")[0]
console.log(
  `pipeline overhead benchmark (${nodeVersion}, ${makeVersion}, ${jobs} CPUs, medians of ${repeat}; first runs on fresh folders each time)\n`,
)
console.log(`load average before: ${loadBefore}, after: ${loads()}\n`)
console.log(
  "| shape | stages | first run | make first | ratio | first-run CPU | make CPU | CPU ratio | cached rerun | Node stat floor | ratio to floor | make cached | one leaf changed | make leaf |",
)
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
const fc = (ms) => (ms === undefined ? "-" : f(ms))
const xc = (a, b) => (a === undefined || b === undefined ? "-" : x(a, b))
for (const r of rows)
  console.log(
    `| ${r.shape} | ${r.n} | ${f(r.firstOurs)} | ${f(r.firstMake)} | ${x(r.firstOurs, r.firstMake)} | ${fc(r.cpuOurs)} | ${fc(r.cpuMake)} | ${xc(r.cpuOurs, r.cpuMake)} | ${f(r.cachedOurs)} | ${f(r.floor)} | ${x(r.cachedOurs, r.floor)} | ${f(r.cachedMake)} | ${f(r.leafOurs)} | ${f(r.leafMake)} |`,
  )
