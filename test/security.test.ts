// biome-ignore-all lint/suspicious/noTemplateCurlyInString: pipeline strings use ${...} references
/**
 * Security, proved by trying through the real CLI: outs that lead out of the project, symbolic links in the
 * workspace and in the store, hostile `--set` values against shell quoting, the stage environment, and
 * hostile lock files, run-cache entries, run records and process lists. Each test keeps a folder outside the
 * project and checks that nothing there was written, removed or killed.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { statuses, TempProject } from "./support/project.js"

let project: TempProject | undefined
let outside: string
const children: ChildProcess[] = []
beforeEach(() => {
  outside = mkdtempSync(join(tmpdir(), "pipeline-outside-"))
  writeFileSync(join(outside, "precious.txt"), "precious\n")
})
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  await project?.remove()
  project = undefined
  rmSync(outside, { recursive: true, force: true })
})

/** Everything in the outside folder, with contents: it must stay exactly `{ "precious.txt": "precious\n" }`. */
const outsideFiles = (): Record<string, string> =>
  Object.fromEntries(
    readdirSync(outside, { recursive: true, encoding: "utf8" })
      .sort()
      .map((f) => [f, readFileSync(join(outside, f), "utf8")]),
  )
const untouched = { "precious.txt": "precious\n" }

const objectPath = (p: TempProject, digest: string) =>
  p.path(`.pipeline/store/objects/${digest.slice(0, 2)}/${digest.slice(2)}`)
const sha256 = (path: string) => spawnSync("sha256sum", [path], { encoding: "utf8" }).stdout.split(" ")[0]!

describe("outs that resolve outside the project are refused", () => {
  it("through a symbolic link to a folder outside, before anything runs", async () => {
    project = await TempProject.create({
      "pipeline.yaml":
        "stages:\n  a:\n    cmd: echo pwned > shared/precious.txt\n    outs: [shared/precious.txt]\n",
    })
    symlinkSync(outside, project.path("shared"))
    const r = await project.run(["run", "--json"])
    expect(r.code).toBe(2)
    expect(JSON.parse(r.stdout).errors[0].message).toBe(
      'out "shared/precious.txt" of stage "a" leads outside the project through the symbolic link "shared"',
    )
    expect(outsideFiles()).toEqual(untouched)
    expect(project.exists(".pipeline/store")).toBe(false)
  })

  it.each([
    ["..", "../precious.txt"],
    ["../..", "a/../../x"],
    ["an absolute path", "OUTSIDE/precious.txt"],
  ])("through %s after interpolation of --set", async (_what, written) => {
    const value = written.replace("OUTSIDE", outside)
    project = await TempProject.create({
      "pipeline.yaml":
        "params:\n  name: ok\nstages:\n  a:\n    cmd: echo pwned > ${params.name}\n    outs: ['${params.name}']\n",
    })
    const r = await project.run(["run", "--json", "--set", `name=${value}`])
    expect(r.code).toBe(2)
    const message = JSON.parse(r.stdout).errors[0].message
    expect(message).toMatch(/^out ".*" of stage "a" is (outside the project|an absolute path)$/)
    expect(outsideFiles()).toEqual(untouched)
    expect(project.exists(".pipeline/store")).toBe(false)
  })

  it("through a link an earlier stage makes during the run: the out is neither removed nor written", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
params:
  outside: x
stages:
  make-link:
    cmd: ln -s \${params.outside} link && echo ok > made.txt
    outs: [made.txt]
  write:
    cmd: echo pwned > link/precious.txt
    outs: [link/precious.txt]
    needs: [make-link]
`,
    })
    const r = await project.runJson(["--set", `outside=${outside}`])
    expect(r.code).toBe(1)
    expect(r.summary.stages.write).toMatchObject({
      status: "failed",
      reason:
        'refusing to read link/precious.txt: the symbolic link "link" leads outside the project; replace the link with a folder',
    })
    expect(outsideFiles()).toEqual(untouched)
  })
})

describe("restoring from the store", () => {
  const pipeline = `
params:
  v: 1
  mode: dir
  outside: x
stages:
  folder:
    cmd: if [ \${params.mode} = link ]; then rm -rf d && ln -s \${params.outside} d; else mkdir -p d; fi; echo ok > folder.txt
    outs: [folder.txt]
  file:
    cmd: echo \${params.v} > d/precious.txt
    outs: [d/precious.txt]
    needs: [folder]
`
  it("never follows a link made since the pipeline was loaded out of the project", async () => {
    project = await TempProject.create({ "pipeline.yaml": pipeline })
    const p = project
    expect((await p.runJson(["--set", "v=1"])).code).toBe(0)
    expect((await p.runJson(["--set", "v=2"])).code).toBe(0)
    // `folder` now turns d into a link to the outside folder, just before `file` is restored into it.
    const r = await p.runJson(["--set", "v=1", "--set", "mode=link", "--set", `outside=${outside}`])
    expect(r.summary.stages.file).toMatchObject({
      status: "failed",
      reason:
        'refusing to read d/precious.txt: the symbolic link "d" leads outside the project; replace the link with a folder',
    })
    expect(outsideFiles()).toEqual(untouched)
  })

  it("refuses an out that became a link, writing neither through it into the store nor out of the project", async () => {
    project = await TempProject.create({
      "pipeline.yaml":
        "params:\n  v: 1\nstages:\n  a:\n    cmd: echo ${params.v} > n.txt\n    outs: [n.txt]\n",
    })
    const p = project
    await p.runJson(["--set", "v=1"])
    const one = sha256(p.path("n.txt"))
    await p.runJson(["--set", "v=2"])
    const two = sha256(p.path("n.txt"))
    // n.txt now points into the store at v=2's object: restoring v=1 must not write through it.
    await p.delete("n.txt")
    symlinkSync(objectPath(p, two), p.path("n.txt"))
    const r = await p.runJson(["--set", "v=1"])
    expect(r.summary.stages.a).toMatchObject({
      status: "failed",
      reason: `outs may not contain symbolic links, but ${p.path("n.txt")} is one; write a copy of the file it points to instead`,
    })
    // A link out of the project is refused before anything runs.
    await p.delete("n.txt")
    symlinkSync(join(outside, "precious.txt"), p.path("n.txt"))
    const out = await p.run(["run", "--json", "--set", "v=1"])
    expect(out.code).toBe(2)
    expect(JSON.parse(out.stdout).errors[0].message).toBe(
      'out "n.txt" of stage "a" leads outside the project through the symbolic link "n.txt"',
    )
    expect(readFileSync(objectPath(p, two), "utf8")).toBe("2\n")
    expect(outsideFiles()).toEqual(untouched)
    expect((await p.run(["verify"])).code).toBe(0)
    // Without the link, the same run restores.
    await p.delete("n.txt")
    expect(statuses((await p.runJson(["--set", "v=1"])).summary)).toEqual({ a: "restored" })
    expect(await p.read("n.txt")).toBe("1\n")
    expect(sha256(objectPath(p, one))).toBe(one)
  })

  it("a stage appending to an out hard-linked to a store object does not reach the store", async () => {
    project = await TempProject.create({
      "pipeline.yaml":
        "params:\n  v: 1\nstages:\n  a:\n    cmd: echo ${params.v} >> n.txt\n    outs: [n.txt]\n",
    })
    const p = project
    await p.runJson(["--set", "v=1"])
    const one = sha256(p.path("n.txt"))
    await p.delete("n.txt")
    spawnSync("ln", [objectPath(p, one), p.path("n.txt")])
    const r = await p.runJson(["--set", "v=2"])
    expect(statuses(r.summary)).toEqual({ a: "ran" })
    expect(await p.read("n.txt")).toBe("2\n")
    expect(readFileSync(objectPath(p, one), "utf8")).toBe("1\n")
    expect((await p.run(["verify"])).code).toBe(0)
  })

  it("an object that is a symbolic link (a hostile store) is discarded, never read through", async () => {
    project = await TempProject.create({
      "pipeline.yaml":
        "params:\n  v: 1\nstages:\n  a:\n    cmd: echo ${params.v} > n.txt\n    outs: [n.txt]\n",
    })
    const p = project
    await p.runJson(["--set", "v=1"])
    const one = sha256(p.path("n.txt"))
    await p.runJson(["--set", "v=2"])
    rmSync(objectPath(p, one))
    symlinkSync(join(outside, "precious.txt"), objectPath(p, one))
    const verify = await p.run(["verify", "--json"])
    expect(verify.code).toBe(1)
    expect(JSON.parse(verify.stdout).corrupt).toEqual([one])
    const r = await p.runJson(["--set", "v=1"])
    expect(statuses(r.summary)).toEqual({ a: "ran" })
    expect(r.stderr).toContain(`store object ${one.slice(0, 12)} is corrupt`)
    expect(await p.read("n.txt")).toBe("1\n")
    expect(outsideFiles()).toEqual(untouched)
    expect((await p.run(["verify"])).code).toBe(0)
  })
})

describe("shell quoting of interpolated values", () => {
  const hostile = [
    "'; touch pwned; '",
    '"; touch pwned; "',
    "$(touch pwned)",
    "`touch pwned`",
    "${HOME}$((1+1))",
    "a\\\\'b\\\"c",
    "x;touch pwned&&touch pwned2|touch pwned3",
    "a\ntouch pwned\n$(touch pwned)",
    "-n",
    "*",
  ]
  // Each value in a param of its own, printed by a command that uses it bare, in double and in single quotes.
  const forms = { bare: (r: string) => r, double: (r: string) => `"${r}"`, single: (r: string) => `'${r}'` }
  const pipeline = [
    "params:",
    ...hostile.map((_, i) => `  s${i}: x`),
    "stages:",
    ...hostile.flatMap((_, i) =>
      Object.entries(forms).flatMap(([form, quote]) => [
        `  ${form}${i}:`,
        `    cmd: printf '%s' ${quote(`\${params.s${i}}`)} > ${form}${i}.txt`,
        `    outs: [${form}${i}.txt]`,
      ]),
    ),
  ].join("\n")

  it("holds against hostile --set values: quotes, $(), backticks, newlines, globs", async () => {
    project = await TempProject.create({ "pipeline.yaml": pipeline })
    // Passed as YAML double-quoted strings so that each value reaches the pipeline exactly as written.
    const r = await project.runJson(hostile.flatMap((v, i) => ["--set", `s${i}=${JSON.stringify(v)}`]))
    expect(r.code, r.stderr).toBe(0)
    for (const [i, value] of hostile.entries())
      for (const form of Object.keys(forms))
        expect(await project.read(`${form}${i}.txt`), `${form}${i}`).toBe(value)
    expect(readdirSync(project.dir).filter((f) => f.startsWith("pwned"))).toEqual([])
  })
})

describe("the stage environment", () => {
  it("holds only the allow-list, the stage's env and PIPELINE_*, whatever the orchestrator has", async () => {
    project = await TempProject.create({
      "pipeline.yaml":
        "stages:\n  a:\n    cmd: env -0 > env.bin\n    outs: [env.bin]\n    env: {MINE: 'yes'}\n    scratch: true\n",
    })
    const r = await project.run(["run"], {
      SECRET_TOKEN: "hunter2",
      LD_LIBRARY_PATH: "/tmp/evil",
      NODE_OPTIONS: "--max-old-space-size=512",
      BASH_ENV: "/tmp/evil.sh",
      ENV: "/tmp/evil.sh",
      PIPELINE_STAGE_SPEC: "{}",
      LANG: "C.UTF-8",
    })
    expect(r.code, r.stderr).toBe(0)
    const names = readFileSync(project.path("env.bin"), "utf8")
      .split("\0")
      .filter((v) => v !== "")
      .map((v) => v.slice(0, v.indexOf("=")))
    const allowed = new Set([
      "PATH",
      "HOME",
      "USER",
      "LOGNAME",
      "SHELL",
      "LANG",
      "LANGUAGE",
      "LC_ALL",
      "LC_CTYPE",
    ])
    for (const n of ["LC_NUMERIC", "LC_MESSAGES", "TZ", "TMPDIR", "TERM", "PWD", "SHLVL", "_"]) allowed.add(n)
    const pipelineVars = [
      "PIPELINE_STAGE",
      "PIPELINE_ROOT",
      "PIPELINE_RUN_ID",
      "PIPELINE_PARAMS",
      "PIPELINE_EVENTS_FD",
      "PIPELINE_SCRATCH",
    ]
    expect(names.filter((n) => !allowed.has(n)).sort()).toEqual(["MINE", ...pipelineVars].sort())
    expect(names).toContain("LANG")
  })
})

describe("hostile state files cannot make the tool write outside the project or kill what is not its own", () => {
  it("a lock file whose outs name paths outside the project", async () => {
    project = await TempProject.create({
      "pipeline.yaml":
        "params:\n  v: 1\nstages:\n  a:\n    cmd: echo ${params.v} > n.txt\n    outs: [n.txt]\n",
    })
    const p = project
    await p.runJson()
    const lock = await p.read("pipeline.lock")
    for (const path of ["../../../../precious.txt", join(outside, "precious.txt")]) {
      await p.write("pipeline.lock", lock.replace("path: n.txt", `path: ${JSON.stringify(path)}`))
      await p.delete("n.txt")
      for (const args of [["status"], ["gc"], ["run"]]) {
        const r = await p.run(args)
        expect(r.code, `${args.join(" ")} with ${path}: ${r.stderr}`).toBe(0)
      }
      expect(await p.read("n.txt")).toBe("1\n")
    }
    await p.write("pipeline.lock", lock.replace(/digest: \w+/, "digest: ../../../../x"))
    expect((await p.run(["gc"])).code).toBe(0)
    expect((await p.run(["run"])).code).toBe(0)
    expect(outsideFiles()).toEqual(untouched)
  })

  it("a run-cache entry whose outs name paths outside the project is not restored", async () => {
    project = await TempProject.create({
      "pipeline.yaml":
        "params:\n  v: 1\nstages:\n  a:\n    cmd: echo ${params.v} > n.txt\n    outs: [n.txt]\n",
    })
    const p = project
    await p.runJson(["--set", "v=1"])
    await p.runJson(["--set", "v=2"])
    const journal = p.path(".pipeline/store/runcache/journal.jsonl")
    const hostile = readFileSync(journal, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((line) => {
        const entry = JSON.parse(line)
        entry.outs[0].path = `../../../../../..${outside}/pwned.txt`
        return `${JSON.stringify(entry)}\n`
      })
    writeFileSync(journal, hostile.join(""))
    const r = await p.runJson(["--set", "v=1"])
    expect(statuses(r.summary)).toEqual({ a: "ran" })
    expect(outsideFiles()).toEqual(untouched)
  })

  it("a run record and process list that name processes that are not the run's", async () => {
    project = await TempProject.create({
      "pipeline.yaml": "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n",
    })
    const p = project
    const runId = "20200101-000000-000-abcd"
    const start = (env: Record<string, string>) => {
      const c = spawn("sleep", ["60"], {
        detached: true,
        stdio: "ignore",
        env: { PATH: process.env.PATH ?? "", ...env },
      })
      children.push(c)
      return c
    }
    const bystander = start({}) // its own process group, no run id
    const otherRun = start({ PIPELINE_RUN_ID: "20200101-000000-000-ffff" })
    const leftover = start({ PIPELINE_RUN_ID: runId, PIPELINE_STAGE: "a" }) // the dead run's own
    const groups = [bystander.pid, otherRun.pid, process.pid, 1, 0, -1, "x", 2 ** 40]
    await p.write(
      `runs/${runId}/processes.jsonl`,
      `${groups.map((pgid) => JSON.stringify({ stage: "a", pgid })).join("\n")}\n{torn`,
    )
    await p.write(
      `runs/${runId}/run.json`,
      JSON.stringify({
        id: "../../../escape",
        status: "running",
        pid: 1,
        started_at: "x",
        ended_at: null,
        stages: { a: { status: "running", log: "../../../etc/passwd" } },
      }),
    )
    await p.write("runs/20200101-000000-001-0000/run.json", JSON.stringify({ stages: null }))
    const dead = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim()
    await p.write(
      ".pipeline/run.lock",
      JSON.stringify({ pid: Number(dead), startedAt: "x", command: "run", runId }),
    )

    const r = await p.runJson()
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain(
      `note: run ${runId} (pid ${dead}) was killed before it finished; took over its lock, and ended the stage processes it left running: a (group ${leftover.pid})\n`,
    )
    const stillAlive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null
    await new Promise((r) =>
      leftover.exitCode !== null || leftover.signalCode !== null ? r(null) : leftover.on("exit", r),
    )
    expect(leftover.signalCode).toBe("SIGKILL")
    expect([stillAlive(bystander), stillAlive(otherRun)]).toEqual([true, true])
    // `runs` and `show` read the hostile records without crashing, and the malformed one is skipped.
    const runs = await p.run(["runs", "--json"])
    expect(runs.code).toBe(0)
    expect(JSON.parse(runs.stdout).runs.map((x: { id: string }) => x.id)).toContain(runId)
    expect((await p.run(["show", runId])).code).toBe(0)
    expect(outsideFiles()).toEqual(untouched)
  })
})

describe("stage and param names that are Object.prototype's", () => {
  it("run, rerun as cached and report status like any other names", async () => {
    project = await TempProject.create({
      "pipeline.yaml": [
        "params:",
        "  __proto__: 1",
        "  hasOwnProperty: 2",
        "stages:",
        "  constructor:",
        "    cmd: echo c > c.txt",
        "    outs: [c.txt]",
        "  __proto__:",
        "    cmd: echo ${params.__proto__} ${params.hasOwnProperty} > p.txt",
        "    outs: [p.txt]",
        "    needs: [constructor]",
        "",
      ].join("\n"),
    })
    const p = project
    const first = await p.runJson(["--set", "__proto__=3"])
    expect(first.code, first.stderr).toBe(0)
    expect(await p.read("p.txt")).toBe("3 2\n")
    const again = await p.runJson(["--set", "__proto__=3"])
    expect(Object.values(again.summary.stages).map((s) => s.status)).toEqual(["cached", "cached"])
    const status = JSON.parse((await p.run(["status", "--json"])).stdout)
    expect(Object.getOwnPropertyDescriptor(status.stages, "__proto__")?.value.reasons).toEqual([
      "param __proto__: 3 -> 1",
    ])
    expect(status.stages.constructor.state).toBe("fresh")
  })
})
