/**
 * End-to-end: execution semantics through the real CLI — parallelism, interruption, the stage environment,
 * shell quoting, GPU slots, the events channel, built-in kinds, status, verify and gc.
 */
import { chmodSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { processAlive, statuses, TempProject, until } from "./support/project.js"

let project: TempProject | undefined
afterEach(async () => {
  await project?.remove()
  project = undefined
})

describe("parallelism", () => {
  it("runs independent stages at the same time", async () => {
    // Each stage announces itself, then waits until the other has announced itself too: they can only both
    // finish if they overlap. A 10-second guard turns a serial run into a failure instead of a hang.
    const waitFor = (me: string, other: string) =>
      `touch ${me}.started; i=0; while [ ! -f ${other}.started ]; do i=$((i+1)); [ $i -gt 1000 ] && exit 9; sleep 0.01; done; echo ok > ${me}.txt`
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  a:
    cmd: ${waitFor("a", "b")}
    outs: [a.txt]
  b:
    cmd: ${waitFor("b", "a")}
    outs: [b.txt]
`,
    })
    const r = await project.runJson(["--jobs", "2"])
    expect(r.code, r.stderr).toBe(0)
    expect(statuses(r.summary)).toEqual({ a: "ran", b: "ran" })
  })

  it("--jobs 1 runs one process at a time, and a stage asking for more CPUs than that still runs", async () => {
    const exclusive = (me: string, other: string) =>
      `test ! -f ${other}.running && touch ${me}.running && sleep 0.2 && test ! -f ${other}.running && rm ${me}.running && echo ok > ${me}.txt`
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  a:
    cmd: ${exclusive("a", "b")}
    outs: [a.txt]
  b:
    cmd: ${exclusive("b", "a")}
    outs: [b.txt]
    resources: { cpu: 4 }
`,
    })
    const r = await project.runJson(["--jobs", "1"])
    expect(r.code, r.stderr).toBe(0)
    expect(statuses(r.summary)).toEqual({ a: "ran", b: "ran" })
  })
})

describe("interruption", () => {
  it("Ctrl-C kills the running stage's process group, records the run as cancelled, and exits 130", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  block:
    cmd: echo partial > out.txt; if [ ! -f go ]; then sleep 60 & echo $! > child.pid; echo $$ > shell.pid; wait; fi
    outs: [out.txt]
  done:
    cmd: echo ok > done.txt
    outs: [done.txt]
`,
    })
    const child = project.spawn(["run", "--jobs", "1"])
    let stderr = ""
    child.stderr?.on("data", (d) => (stderr += String(d)))
    const p = project
    await until(
      () =>
        p.exists("child.pid") &&
        p.exists("shell.pid") &&
        readFileSync(p.path("child.pid"), "utf8").trim() !== "",
      "the stage to start",
    )
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)))
    child.kill("SIGINT")
    expect(await exited).toBe(130)
    const pids = ["child.pid", "shell.pid"].map((f) => Number(readFileSync(p.path(f), "utf8").trim()))
    for (const pid of pids) expect(processAlive(pid), `pid ${pid} still alive`).toBe(false)
    const runs = readdirSync(p.path("runs")).filter((d) => d !== "README.md")
    const record = JSON.parse(readFileSync(join(p.path("runs"), runs[0]!, "run.json"), "utf8"))
    expect(record.status).toBe("cancelled")
    expect(
      Object.values(record.stages)
        .map((s) => (s as { status: string }).status)
        .sort(),
    ).toEqual(["cancelled", "skipped"])
    // What the interrupted command left at its out is gone: it was never an output of the stage.
    expect(p.exists("out.txt")).toBe(false)
    const verify = await p.run(["verify"])
    expect(verify.code).toBe(0)
    // Nothing of the interrupted stage entered the store: the next run executes it.
    await p.write("go", "")
    const again = await p.runJson()
    expect(again.summary.stages.block?.status).toBe("ran")
    expect(stderr).toContain("Interrupted")
  }, 30_000)
})

describe("the stage's world", () => {
  it("sees only allow-listed variables plus its declared env and PIPELINE_* variables", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
params:
  lr: 0.1
  model: { size: 3 }
stages:
  env:
    cmd: env | sort > env.txt
    outs: [env.txt]
    params: [lr, model]
    env:
      MY_FLAG: \${params.lr}
`,
    })
    const r = await project.run(["run"], { SECRET_TOKEN: "hunter2" })
    expect(r.code, r.stderr).toBe(0)
    const env = await project.read("env.txt")
    expect(env).not.toContain("SECRET_TOKEN")
    expect(env).toContain("MY_FLAG=0.1\n")
    expect(env).toContain('PIPELINE_PARAMS={"lr":0.1,"model":{"size":3}}\n')
    expect(env).toContain("PIPELINE_STAGE=env\n")
    expect(env).toContain("PIPELINE_EVENTS_FD=3\n")
  })

  it("shell-quotes interpolated values so a hostile --set cannot start a second command", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
params:
  name: world
stages:
  greet:
    cmd: echo hello \${params.name} > greeting.txt
    outs: [greeting.txt]
`,
    })
    for (const hostile of [
      "x; touch pwned",
      "$(touch pwned)",
      "`touch pwned`",
      "x'; touch pwned; echo '",
      "a\ntouch pwned",
    ]) {
      const r = await project.run(["run", "--set", `name=${JSON.stringify(hostile)}`])
      expect(r.code, r.stderr).toBe(0)
      expect(project.exists("pwned")).toBe(false)
      expect(await project.read("greeting.txt")).toBe(`hello ${hostile}\n`)
    }
  })

  it("gives a GPU stage its own device ids", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  g1:
    cmd: echo $CUDA_VISIBLE_DEVICES/$PIPELINE_GPUS > g1.txt
    outs: [g1.txt]
    resources: { gpu: 1 }
  g2:
    cmd: echo $CUDA_VISIBLE_DEVICES > g2.txt
    outs: [g2.txt]
    resources: { gpu: 1 }
`,
    })
    const r = await project.run(["run", "--gpus", "2"])
    expect(r.code, r.stderr).toBe(0)
    const ids = [
      (await project.read("g1.txt")).trim().split("/")[0],
      (await project.read("g2.txt")).trim(),
    ].sort()
    expect(ids).toEqual(["0", "1"])
    expect((await project.read("g1.txt")).trim()).toMatch(/^(\d)\/\1$/)
    const none = await project.run(["run", "--force", "--gpus", "0"])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('stage "g1" needs 1 GPU(s) but this run has 0')
  })

  it("turns JSON lines on fd 3 into progress events", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  train:
    cmd: |
      for i in 1 2; do echo "{\\"step\\": $i, \\"total\\": 2, \\"loss\\": 0.5}" >&3; done
      echo 'not json' >&3
      echo ok > m.txt
    outs: [m.txt]
`,
    })
    const r = await project.run(["run"])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain("[train] step 1/2 loss=0.5000")
    expect(r.stderr).toContain("[train] step 2/2 loss=0.5000")
    expect(r.stderr).toContain("not a JSON object: not json")
  })
})

describe("built-in stage kinds", () => {
  it("runs word-count through the stage runner, with derived deps and outs", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  count:
    uses: word-count
    with:
      input: text.txt
      top: 2
`,
      "text.txt": "the cat and the hat\nThe end\n",
    })
    const r = await project.runJson()
    expect(r.code, r.stderr).toBe(0)
    const counts = JSON.parse(await project.read("outputs/pipeline/count/counts.json"))
    expect(counts).toEqual({
      files: ["text.txt"],
      lines: 2,
      words: 7,
      distinct: 5,
      top: [
        { word: "the", count: 3 },
        { word: "and", count: 1 },
      ],
    })
    await project.write("text.txt", "a b\n")
    const again = await project.runJson()
    expect(again.summary.stages.count?.status).toBe("ran")
  })
})

describe("status, verify and gc", () => {
  const two = `
params:
  n: 1
stages:
  make:
    cmd: echo \${params.n} > n.txt
    outs: [n.txt]
    params: [n]
  copy:
    cmd: cp n.txt copy.txt
    deps: [n.txt]
    outs: [copy.txt]
`
  it("status says fresh, stale with reasons, and restorable", async () => {
    project = await TempProject.create({ "pipeline.yaml": two })
    const never = JSON.parse((await project.run(["status", "--json"])).stdout)
    expect(never.stages.make).toEqual({
      fresh: false,
      state: "stale",
      reasons: ["never run (no entry in the lock file)"],
    })
    await project.run(["run"])
    const fresh = JSON.parse((await project.run(["status", "--json"])).stdout)
    expect(fresh.stages).toEqual({
      make: { fresh: true, state: "fresh", reasons: [] },
      copy: { fresh: true, state: "fresh", reasons: [] },
    })
    const changed = JSON.parse((await project.run(["status", "--json", "--set", "n=2"])).stdout)
    expect(changed.stages.make).toEqual({ fresh: false, state: "stale", reasons: ["param n: 1 -> 2"] })
    expect(changed.stages.copy.state).toBe("stale")
    expect(changed.stages.copy.reasons[0]).toContain('upstream stage "make" is stale')
    await project.run(["run", "--set", "n=2"])
    const back = JSON.parse((await project.run(["status", "--json"])).stdout)
    expect(back.stages.make.state).toBe("restorable")
    expect(back.stages.copy.state).toBe("restorable")
    expect(project.exists("n.txt")).toBe(true)
  })

  it("verify finds a corrupted object and --repair removes it; gc keeps what the lock needs", async () => {
    project = await TempProject.create({ "pipeline.yaml": two })
    await project.run(["run"])
    await project.run(["run", "--set", "n=2"])
    // The n=1 results are in no lock file and not in the last run: gc drops their two run-cache entries.
    const gc = JSON.parse((await project.run(["gc", "--keep-last", "1", "--json"])).stdout)
    expect(gc).toMatchObject({ dry_run: false, removed_run_cache_entries: 2 })
    expect((await project.run(["verify"])).code).toBe(0)
    const objects = project.path(".pipeline/store/objects")
    const [sub, name] = readdirSync(objects)
      .flatMap((d) => readdirSync(join(objects, d)).map((f) => [d, f] as const))
      .sort()[0]!
    const victim = join(objects, sub, name)
    chmodSync(victim, 0o644)
    writeFileSync(victim, "tampered\n")
    const bad = await project.run(["verify", "--json"])
    expect(bad.code).toBe(1)
    expect(JSON.parse(bad.stdout).corrupt).toEqual([sub + name])
    expect((await project.run(["verify", "--repair"])).code).toBe(0)
    expect((await project.run(["verify"])).code).toBe(0)
    // What the lock file (n=2) needs survives: deleting outs and running restores them.
    await project.delete("n.txt")
    await project.delete("copy.txt")
    const r = await project.runJson(["--set", "n=2"])
    expect(r.code).toBe(0)
    expect(await project.read("copy.txt")).toBe("2\n")
  })

  it("prints the DAG as mermaid", async () => {
    project = await TempProject.create({ "pipeline.yaml": two })
    const r = await project.run(["dag", "--format", "mermaid"])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('flowchart LR\n  s0["make"]\n  s1["copy"]\n  s0 --> s1\n')
  })

  it("reports an invalid pipeline as JSON with exit 2 and runs nothing", async () => {
    project = await TempProject.create({ "pipeline.yaml": "stages:\n  a:\n    cmdd: echo hi\n" })
    const r = await project.run(["run", "--json"])
    expect(r.code).toBe(2)
    const out = JSON.parse(r.stdout)
    expect(out.status).toBe("invalid")
    expect(out.errors).toContainEqual({
      file: "pipeline.yaml",
      line: 3,
      column: 5,
      message: 'unknown key "cmdd" in stage "a"',
      hint: 'Did you mean "cmd"?',
    })
    expect(r.stderr).toContain('Did you mean "cmd"?')
    expect(project.exists(".pipeline/store")).toBe(false)
  })
})
