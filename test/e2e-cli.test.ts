/**
 * End-to-end: the rest of the CLI surface — run records (`runs`, `show`), `--dry-run`, the store location,
 * `gc --dry-run`, SIGTERM, usage errors.
 */
import { existsSync, readFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { statuses, TempProject, until } from "./support/project.js"

let project: TempProject | undefined
afterEach(async () => {
  await project?.remove()
  project = undefined
})

const two = `
params:
  n: 1
stages:
  make:
    cmd: echo \${params.n} > n.txt && echo made
    outs: [n.txt]
    params: [n]
  copy:
    cmd: cp n.txt copy.txt
    deps: [n.txt]
    outs: [copy.txt]
`

describe("run records", () => {
  it("writes runs/<id>/run.json and a log per stage that printed, listed by `runs` and shown by `show`", async () => {
    project = await TempProject.create({ "pipeline.yaml": two })
    const r = await project.runJson(["--set", "n=7"])
    const record = JSON.parse(await project.read(`runs/${r.summary.run}/run.json`))
    expect(record).toMatchObject({
      id: r.summary.run,
      name: "pipeline",
      status: "succeeded",
      params: { n: 7 },
      stages: {
        make: { status: "ran", log: `runs/${r.summary.run}/make.log`, attempts: 1 },
        copy: { status: "ran", log: null, attempts: 1 },
      },
    })
    expect(record.stages.make.fingerprint).toBe(r.summary.stages.make?.fingerprint)
    expect(await project.read(`runs/${r.summary.run}/make.log`)).toBe("made\n")
    const list = await project.run(["runs"])
    expect(list.code).toBe(0)
    expect(list.stdout).toMatch(new RegExp(`^${r.summary.run}  pipeline\\s+succeeded\\s+2 ran\\n$`))
    const shown = await project.run(["show", "last"])
    expect(shown.stdout).toContain(`run ${r.summary.run}: pipeline`)
    expect(shown.stdout).toMatch(/ran\s+make/)
    const missing = await project.run(["show", "nope"])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('no run matches "nope"')
  })
})

describe("--dry-run", () => {
  it("says what would run or be restored and changes nothing", async () => {
    project = await TempProject.create({ "pipeline.yaml": two })
    const first = await project.run(["run", "--dry-run", "--json"])
    expect(JSON.parse(first.stdout)).toEqual({
      dry_run: true,
      stages: {
        make: { state: "stale", reasons: ["never run (no entry in the lock file)"] },
        copy: {
          state: "stale",
          reasons: [
            'upstream stage "make" is stale (early cutoff may still spare this stage if its outputs come out the same)',
          ],
        },
      },
    })
    expect(project.exists("n.txt")).toBe(false)
    expect(project.exists("runs")).toBe(false)
    await project.run(["run"])
    await project.run(["run", "--set", "n=2"])
    const back = await project.run(["run", "--dry-run"])
    expect(back.stderr).toContain("would restore make")
    expect(await project.read("n.txt")).toBe("2\n")
  })
})

describe("the store's location", () => {
  it("follows --store and PIPELINE_STORE", async () => {
    project = await TempProject.create({ "pipeline.yaml": two })
    const elsewhere = await mkdtemp(join(tmpdir(), "pipeline-store-"))
    try {
      const r = await project.run(["run", "--store", join(elsewhere, "a")])
      expect(r.code, r.stderr).toBe(0)
      expect(existsSync(join(elsewhere, "a", "objects"))).toBe(true)
      expect(project.exists(".pipeline/store")).toBe(false)
      const env = await project.run(["run", "--set", "n=3"], { PIPELINE_STORE: join(elsewhere, "b") })
      expect(env.code, env.stderr).toBe(0)
      expect(existsSync(join(elsewhere, "b", "runcache"))).toBe(true)
    } finally {
      await rm(elsewhere, { recursive: true, force: true })
    }
  })
})

describe("store errors", () => {
  it("are reported in one line with exit 1, not as a crash", async () => {
    project = await TempProject.create({ "pipeline.yaml": two, "not-a-folder": "x\n" })
    for (const args of [["run"], ["status"], ["verify"], ["gc"]]) {
      const r = await project.run([...args, "--store", "not-a-folder/store"])
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(1)
      expect(r.stderr).toMatch(/^error: .*not-a-folder/m)
      expect(r.stderr).not.toContain("internal error")
    }
  })
})

describe("gc", () => {
  it("--dry-run reports what it would remove and removes nothing", async () => {
    project = await TempProject.create({ "pipeline.yaml": two })
    await project.run(["run"])
    await project.run(["run", "--set", "n=2"])
    const dry = JSON.parse((await project.run(["gc", "--keep-last", "1", "--dry-run", "--json"])).stdout)
    expect(dry).toMatchObject({ dry_run: true, removed_run_cache_entries: 2 })
    // Nothing was removed: the n=1 results are still restorable.
    const r = await project.runJson()
    expect(statuses(r.summary)).toEqual({ make: "restored", copy: "restored" })
    const bad = await project.run(["gc", "--older-than", "soon"])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--older-than "soon" is not a duration')
  })
})

describe("signals and usage", () => {
  it("SIGTERM cancels the run and exits 143", async () => {
    project = await TempProject.create({
      "pipeline.yaml": "stages:\n  wait:\n    cmd: echo $$ > pid.txt; sleep 60\n",
    })
    const child = project.spawn(["run"])
    const p = project
    await until(
      () => p.exists("pid.txt") && readFileSync(p.path("pid.txt"), "utf8").trim() !== "",
      "the stage to start",
    )
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)))
    child.kill("SIGTERM")
    expect(await exited).toBe(143)
  })

  it("rejects an unknown command, flag or stage with exit 2 and a hint", async () => {
    project = await TempProject.create({ "pipeline.yaml": two })
    const cmd = await project.run(["rn"])
    expect(cmd.code).toBe(2)
    expect(cmd.stderr).toBe('error: unknown command "rn"\n   Did you mean "run"?\n')
    const flag = await project.run(["run", "--jbos", "2"])
    expect(flag.code).toBe(2)
    expect(flag.stderr).toBe('error: unknown option "--jbos" for `pipeline run`\n   Did you mean "--jobs"?\n')
    const stage = await project.run(["run", "--only", "mkae"])
    expect(stage.code).toBe(2)
    expect(stage.stderr).toContain('Did you mean "make"?')
    const jobs = await project.run(["run", "--jobs", "0"])
    expect(jobs.code).toBe(2)
    expect(jobs.stderr).toContain("--jobs must be an integer >= 1")
  })

  it("prints its version", async () => {
    project = await TempProject.create({})
    const r = await project.run(["--version"])
    const pkg = JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8"))
    expect(r.stdout).toBe(`${pkg.version}\n`)
  })
})
