/**
 * Kill safety: a `pipeline run` killed with SIGKILL (no chance to clean up) leaves a store that verifies, a
 * run record that says it is incomplete, and stage processes that the next run ends before it touches the
 * workspace; the run after it completes with exactly a clean run's outputs. The soak trials are those of
 * `bench/soak-kill.mjs` (which runs 50 by default), a few of them with a fixed seed.
 */
import { spawn, spawnSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { processAlive, repoRoot, TempProject, until } from "./support/project.js"

let project: TempProject | undefined
afterEach(async () => {
  await project?.remove()
  project = undefined
})

describe("a run killed with SIGKILL", () => {
  it("stays `running` with no end time, shows as interrupted, and its leftover stage is ended by the next run", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  fast:
    cmd: echo fast > fast.txt
    outs: [fast.txt]
  slow:
    cmd: echo $$ > slow.pid; if [ ! -f go ]; then while true; do echo tick >> slow.txt; sleep 0.01; done; fi; echo done > slow.txt
    outs: [slow.txt]
`,
    })
    const p = project
    const child = p.spawn(["run", "--jobs", "2"])
    let stderr = ""
    child.stderr?.on("data", (d) => (stderr += String(d)))
    // `fast` is reported once its outs are in the store; `slow` loops until killed.
    await until(() => p.exists("slow.txt") && /^ran +fast/m.test(stderr), "fast to finish and slow to start")
    const leftover = Number(readFileSync(p.path("slow.pid"), "utf8"))
    const exited = new Promise((r) => child.on("exit", r))
    child.kill("SIGKILL")
    await exited
    // Node cannot take its children down with it: the stage's process group is still running.
    expect(processAlive(leftover)).toBe(true)

    const [id] = readdirSync(p.path("runs"))
    const record = JSON.parse(await p.read(`runs/${id}/run.json`))
    expect({ status: record.status, ended_at: record.ended_at, pid: record.pid }).toEqual({
      status: "running",
      ended_at: null,
      pid: child.pid,
    })
    const processes = (await p.read(`runs/${id}/processes.jsonl`))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
    expect(processes).toContainEqual({ stage: "slow", pgid: leftover })
    const runs = await p.run(["runs"])
    expect(runs.stdout).toMatch(new RegExp(`^${id}  pipeline +interrupted `, "m"))
    const runsJson = JSON.parse((await p.run(["runs", "--json"])).stdout)
    expect(runsJson.runs[0]).toMatchObject({ id, status: "running", interrupted: true, ended_at: null })
    expect((await p.run(["verify"])).code).toBe(0)

    // The next run takes over the stale lock and ends the leftover group before it touches slow.txt.
    await p.write("go", "")
    const next = await p.runJson()
    expect(next.code, next.stderr).toBe(0)
    expect(next.stderr).toContain(
      `note: run ${id} (pid ${child.pid}) was killed before it finished; took over its lock, and ended the stage processes it left running: slow (group ${leftover})\n`,
    )
    expect(processAlive(leftover)).toBe(false)
    expect(await p.read("slow.txt")).toBe("done\n")
    expect(next.summary.stages.fast?.status).toBe("cached") // it finished before the kill: its result was kept
    expect(p.exists(".pipeline/run.lock")).toBe(false)
  })
})

describe("a stale lock on an up-to-date project", () => {
  it("is not answered from the no-op snapshot: the run takes it over and ends what the killed run left", async () => {
    project = await TempProject.create({
      "pipeline.yaml": "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n",
    })
    const p = project
    expect((await p.runJson()).code).toBe(0) // leaves a snapshot: the next plain run would answer from it
    const runId = "20200101-000000-000-abcd"
    const leftover = spawn("sleep", ["60"], {
      detached: true,
      stdio: "ignore",
      env: { PATH: process.env.PATH ?? "", PIPELINE_RUN_ID: runId, PIPELINE_STAGE: "a" },
    })
    const gone = new Promise((r) => leftover.on("exit", r))
    const dead = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim()
    await p.write(
      ".pipeline/run.lock",
      JSON.stringify({ pid: Number(dead), startedAt: "x", command: "run", runId }),
    )
    try {
      const r = await p.runJson()
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toContain(
        `note: run ${runId} (pid ${dead}) was killed before it finished; took over its lock, and ended the stage processes it left running: a (group ${leftover.pid})\n`,
      )
      await gone
      expect(leftover.signalCode).toBe("SIGKILL")
    } finally {
      if (leftover.exitCode === null && leftover.signalCode === null) leftover.kill("SIGKILL")
    }
  })
})

describe("soak trials (bench/soak-kill.mjs)", () => {
  it("kill at random moments, then verify, complete, and match a clean run byte for byte", () => {
    const r = spawnSync(
      process.execPath,
      [join(repoRoot, "bench", "soak-kill.mjs"), "--trials", "3", "--seed", "42", "--stages", "8", "--json"],
      { encoding: "utf8" },
    )
    expect(r.status, r.stderr).toBe(0)
    const summary = JSON.parse(r.stdout)
    expect(summary.failure_details).toEqual([])
    expect(summary).toMatchObject({ trials: 3, failures: 0, seed: 42 })
  }, 120_000)
})
