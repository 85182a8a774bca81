/**
 * End-to-end: the real CLI on temporary projects. Caching, early cutoff, restore, hand-edited outs,
 * failures, retries, timeouts and selection.
 */
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import { statuses, TempProject } from "./support/project.js"

let project: TempProject | undefined
afterEach(async () => {
  await project?.remove()
  project = undefined
})

/** A three-stage chain; every stage appends a line to probe.log when its command really runs. */
const chain = `
params:
  suffix: "!"
stages:
  upper:
    cmd: echo upper >> probe.log && tr a-z A-Z < input.txt > upper.txt
    deps: [input.txt]
    outs: [upper.txt]
  first:
    cmd: echo first >> probe.log && cut -c1-3 upper.txt > first.txt
    deps: [upper.txt]
    outs: [first.txt]
  shout:
    cmd: echo shout >> probe.log && sed 's/$/\${params.suffix}/' first.txt > shout.txt
    deps: [first.txt]
    outs: [shout.txt]
    params: [suffix]
`

const probe = (p: TempProject): string[] =>
  p.exists("probe.log") ? readFileSync(p.path("probe.log"), "utf8").trim().split("\n") : []

describe("pipeline run", () => {
  it("runs every stage once, then nothing, and says so", async () => {
    project = await TempProject.create({ "pipeline.yaml": chain, "input.txt": "hello world\n" })
    const first = await project.runJson()
    expect(first.code).toBe(0)
    expect(statuses(first.summary)).toEqual({ upper: "ran", first: "ran", shout: "ran" })
    expect(await project.read("shout.txt")).toBe("HEL!\n")
    const second = await project.runJson()
    expect(second.code).toBe(0)
    expect(statuses(second.summary)).toEqual({ upper: "cached", first: "cached", shout: "cached" })
    expect(second.stderr).toContain("Nothing to do: all 3 stages are up to date.")
    expect(probe(project)).toEqual(["upper", "first", "shout"])
  })

  it("reruns only what an edited dep reaches, and cuts off early on identical outputs", async () => {
    project = await TempProject.create({ "pipeline.yaml": chain, "input.txt": "hello world\n" })
    await project.runJson()
    // Changes upper.txt but not its first three letters: `first` reruns, writes the same bytes, `shout` stays.
    await project.write("input.txt", "hello there\n")
    const r = await project.runJson()
    expect(statuses(r.summary)).toEqual({ upper: "ran", first: "ran", shout: "cached" })
    expect(r.summary.stages.upper?.reason).toBe("dep input.txt changed")
    expect(probe(project)).toEqual(["upper", "first", "shout", "upper", "first"])
  })

  it("restores from the cache on revert without running anything", async () => {
    project = await TempProject.create({ "pipeline.yaml": chain, "input.txt": "hello world\n" })
    await project.runJson()
    const changed = await project.runJson(["--set", "suffix=."])
    expect(statuses(changed.summary)).toEqual({ upper: "cached", first: "cached", shout: "ran" })
    expect(await project.read("shout.txt")).toBe("HEL.\n")
    const reverted = await project.runJson()
    expect(statuses(reverted.summary)).toEqual({ upper: "cached", first: "cached", shout: "restored" })
    expect(await project.read("shout.txt")).toBe("HEL!\n")
    expect(probe(project)).toEqual(["upper", "first", "shout", "shout"])
  })

  it("treats another stage's out referenced in cmd as a dep", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  make:
    cmd: cp input.txt made.txt
    deps: [input.txt]
    outs: [made.txt]
  use:
    cmd: cat \${stages.make.outs[0]} > used.txt
    outs: [used.txt]
`,
      "input.txt": "one\n",
    })
    expect(statuses((await project.runJson()).summary)).toEqual({ make: "ran", use: "ran" })
    await project.write("input.txt", "two\n")
    const r = await project.runJson()
    expect(statuses(r.summary)).toEqual({ make: "ran", use: "ran" })
    expect(r.summary.stages.use?.reason).toBe("dep made.txt changed")
    expect(await project.read("used.txt")).toBe("two\n")
  })

  it("restores a deleted out", async () => {
    project = await TempProject.create({ "pipeline.yaml": chain, "input.txt": "hello world\n" })
    await project.runJson()
    await project.delete("upper.txt")
    const r = await project.runJson()
    expect(statuses(r.summary)).toEqual({ upper: "restored", first: "cached", shout: "cached" })
    expect(await project.read("upper.txt")).toBe("HELLO WORLD\n")
    expect(probe(project)).toHaveLength(3)
  })

  it("saves a hand-edited out before replacing it, and recover gives it back", async () => {
    project = await TempProject.create({ "pipeline.yaml": chain, "input.txt": "hello world\n" })
    await project.runJson()
    await project.write("first.txt", "my precious edit\n")
    const r = await project.runJson()
    expect(statuses(r.summary)).toEqual({ upper: "cached", first: "restored", shout: "cached" })
    expect(await project.read("first.txt")).toBe("HEL\n")
    const saved = /saved\s+first\.txt .*pipeline recover ([0-9a-f]{12}) --to first\.txt\.edited/.exec(
      r.stderr,
    )
    expect(saved, r.stderr).not.toBeNull()
    const rec = await project.run(["recover", saved![1]!, "--to", "back.txt"])
    expect(rec.code).toBe(0)
    expect(await project.read("back.txt")).toBe("my precious edit\n")
  })

  it("writes a lock file recording fingerprints, params and digests", async () => {
    project = await TempProject.create({ "pipeline.yaml": chain, "input.txt": "hello world\n" })
    const r = await project.runJson()
    const lock = await project.read("pipeline.lock")
    expect(lock).toContain(`fingerprint: ${r.summary.stages.shout?.fingerprint}`)
    expect(lock).toMatch(
      /shout:\n {4}fingerprint: [0-9a-f]{64}\n {4}params:\n {6}suffix: "!"\n {4}deps:\n {6}- path: first.txt\n/,
    )
    const digest = createHash("sha256").update("HELLO WORLD\n").digest("hex")
    expect(lock).toContain(
      `outs:\n      - path: upper.txt\n        kind: file\n        digest: ${digest}\n        size: 12\n`,
    )
  })
})

describe("failures", () => {
  it("fails a stage, skips its downstream, exits 1, and stores nothing of it", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  bad:
    cmd: echo partial > bad.txt && echo oops >&2 && exit 3
    outs: [bad.txt]
  after:
    cmd: cp bad.txt after.txt
    deps: [bad.txt]
    outs: [after.txt]
  independent:
    cmd: echo ok > ind.txt
    outs: [ind.txt]
`,
    })
    const r = await project.runJson(["--jobs", "1"])
    expect(r.code).toBe(1)
    expect(r.summary.status).toBe("failed")
    expect(r.summary.stages.bad).toMatchObject({ status: "failed", reason: "exited with code 3" })
    expect(r.summary.stages.after).toMatchObject({ status: "skipped", reason: 'upstream stage "bad" failed' })
    expect(r.stderr).toContain("[bad] oops")
    expect(project.exists("bad.txt")).toBe(false)
    const again = await project.runJson(["--keep-going"])
    expect(again.summary.stages.independent?.status).toMatch(/ran|cached/)
    expect(again.summary.stages.bad?.status).toBe("failed")
  })

  it("fails a stage that exits 0 without writing a declared out", async () => {
    project = await TempProject.create({
      "pipeline.yaml": "stages:\n  lazy:\n    cmd: 'true'\n    outs: [never.txt]\n",
    })
    const r = await project.runJson()
    expect(r.code).toBe(1)
    expect(r.summary.stages.lazy?.reason).toBe(
      "the command succeeded but did not write its declared out never.txt: write it, or remove it from outs",
    )
  })

  it("retries with backoff and succeeds", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  flaky:
    cmd: echo partial > out.txt; echo x >> attempts && test $(wc -l < attempts) -ge 3 && echo done > out.txt
    outs: [out.txt]
    retries: 2
    retry_delay: 10ms
`,
    })
    const r = await project.runJson()
    expect(r.code).toBe(0)
    expect(r.summary.stages.flaky?.status).toBe("ran")
    expect(r.stderr).toContain("retrying  flaky: attempt 1 failed (exited with code 1); next in 10ms")
    expect(r.stderr).toContain("retrying  flaky: attempt 2 failed (exited with code 1); next in 20ms")
    expect(r.stderr).not.toContain("saved")
  })

  it("kills a stage that runs past its timeout", async () => {
    project = await TempProject.create({
      "pipeline.yaml": "stages:\n  slow:\n    cmd: sleep 30\n    timeout: 200ms\n",
    })
    const r = await project.runJson()
    expect(r.code).toBe(1)
    expect(r.summary.stages.slow).toMatchObject({ status: "failed", reason: "timed out after 200ms" })
  })
})

describe("selection and forcing", () => {
  it("--only runs a stage and its upstream; --downstream a stage and what follows", async () => {
    project = await TempProject.create({ "pipeline.yaml": chain, "input.txt": "abcdef\n" })
    const only = await project.runJson(["--only", "first"])
    expect(statuses(only.summary)).toEqual({ upper: "ran", first: "ran" })
    const down = await project.runJson(["--downstream", "first", "--force"])
    expect(statuses(down.summary)).toEqual({ first: "ran", shout: "ran" })
    const one = await project.runJson(["--force-stage", "upper"])
    expect(statuses(one.summary)).toEqual({ upper: "ran", first: "cached", shout: "cached" })
    expect(one.summary.stages.upper?.reason).toBe("forced")
  })
})
