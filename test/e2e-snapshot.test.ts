/**
 * End-to-end: the no-op snapshot. A rerun with nothing changed answers from the snapshot; any change to a
 * dep, an out, the pipeline, a folder's entries or the options takes the full path and does what is needed.
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { statuses, TempProject } from "./support/project.js"

let project: TempProject | undefined
afterEach(async () => {
  await project?.remove()
  project = undefined
})

const pipeline = `
params:
  n: 1
stages:
  count:
    cmd: ls data | wc -l > count.txt
    deps: [data]
    outs: [count.txt]
  twice:
    cmd: cat count.txt count.txt > twice.txt; echo \${params.n} >> twice.txt
    deps: [count.txt]
    outs: [twice.txt]
`

const shortcut = (p: TempProject, run: string): string | undefined =>
  JSON.parse(readFileSync(join(p.path("runs"), run, "run.json"), "utf8")).shortcut

describe("the no-op snapshot", () => {
  it("answers a rerun with nothing changed, and steps aside for every kind of change", async () => {
    project = await TempProject.create({ "pipeline.yaml": pipeline, "data/a.txt": "a\n" })
    const first = await project.runJson()
    expect(shortcut(project, first.summary.run)).toBeUndefined()
    const again = await project.runJson()
    expect(statuses(again.summary)).toEqual({ count: "cached", twice: "cached" })
    expect(shortcut(project, again.summary.run)).toBe("snapshot")
    expect(again.summary.stages.twice?.fingerprint).toBe(first.summary.stages.twice?.fingerprint)
    expect(again.stderr).toContain("Nothing to do: all 2 stages are up to date.")

    // Same size, written at once (within one timestamp tick of the snapshot): caught by content.
    await project.write("data/a.txt", "b\n")
    const edited = await project.runJson()
    expect(shortcut(project, edited.summary.run)).toBeUndefined()
    expect(statuses(edited.summary)).toEqual({ count: "ran", twice: "cached" })

    // A new entry in a folder dep.
    await project.write("data/b.txt", "b\n")
    const added = await project.runJson()
    expect(statuses(added.summary)).toEqual({ count: "ran", twice: "ran" })
    expect(await project.read("twice.txt")).toBe("2\n2\n1\n")

    // An out edited by hand.
    await project.write("twice.txt", "mine\n")
    const handEdited = await project.runJson()
    expect(shortcut(project, handEdited.summary.run)).toBeUndefined()
    expect(statuses(handEdited.summary)).toEqual({ count: "cached", twice: "restored" })

    // Other options.
    const other = await project.runJson(["--set", "n=2"])
    expect(shortcut(project, other.summary.run)).toBeUndefined()
    expect(statuses(other.summary)).toEqual({ count: "cached", twice: "ran" })

    // The pipeline file itself.
    const back = await project.runJson()
    expect(statuses(back.summary)).toEqual({ count: "cached", twice: "restored" })
    await project.write("pipeline.yaml", pipeline.replace("wc -l", "wc -l "))
    const changed = await project.runJson()
    expect(shortcut(project, changed.summary.run)).toBeUndefined()
    expect(statuses(changed.summary)).toEqual({ count: "ran", twice: "cached" })

    // --force always takes the full path.
    const forced = await project.runJson(["--force"])
    expect(statuses(forced.summary)).toEqual({ count: "ran", twice: "ran" })
  })

  it("is not taken when a file changed after the run hashed it: the next run sees the change", async () => {
    // `edit` changes count's dep after count hashed it, as a user editing the file during a run would.
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  count:
    cmd: wc -c < data.txt > count.txt
    deps: [data.txt]
    outs: [count.txt]
  edit:
    cmd: echo more >> data.txt
    needs: [count]
`,
      "data.txt": "a\n",
    })
    const first = await project.runJson()
    expect(statuses(first.summary)).toEqual({ count: "ran", edit: "ran" })
    const second = await project.runJson()
    expect(shortcut(project, second.summary.run)).toBeUndefined()
    expect(statuses(second.summary)).toEqual({ count: "ran", edit: "cached" })
    expect(await project.read("count.txt")).toBe("7\n")
    const third = await project.runJson()
    expect(shortcut(project, third.summary.run)).toBe("snapshot")
    expect(statuses(third.summary)).toEqual({ count: "cached", edit: "cached" })
  })
})
