/**
 * End-to-end: a stage's scratch folder (`scratch: true` for a command), `.pipeline/scratch/<fingerprint>/`
 * in `PIPELINE_SCRATCH` — kept across a failure, a retry and an interruption so the rerun with the same
 * fingerprint resumes from it, removed once the stage succeeds, and collected by `pipeline gc` when no run
 * would resume from it. A command that does not ask for one gets none.
 */
import { readFileSync } from "node:fs"
import { basename } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { TempProject, until } from "./support/project.js"

let project: TempProject | undefined
afterEach(async () => {
  await project?.remove()
  project = undefined
})

/** A training stage that fails after writing its checkpoint, unless it finds one to resume from. */
const RESUMING = `stages:
  train:
    cmd: |
      echo "$PIPELINE_SCRATCH" >> scratch-paths.txt
      if [ -f "$PIPELINE_SCRATCH/checkpoint" ]; then
        echo "resumed from $(cat "$PIPELINE_SCRATCH/checkpoint")" > model.txt
      else
        echo step-5 > "$PIPELINE_SCRATCH/checkpoint"
        exit 3
      fi
    outs: [model.txt]
    scratch: true
`

/** The owners `.pipeline/scratch/owners.jsonl` names, the last line for a fingerprint winning. */
const owners = async (p: TempProject): Promise<Record<string, unknown>> => {
  const text = p.exists(".pipeline/scratch/owners.jsonl")
    ? await p.read(".pipeline/scratch/owners.jsonl")
    : ""
  const byFp: Record<string, unknown> = {}
  for (const line of text.split("\n").filter((l) => l !== "")) {
    const { fp, ...owner } = JSON.parse(line) as { fp: string }
    byFp[fp] = owner
  }
  return byFp
}

describe("a stage's scratch folder", () => {
  it("survives a failure; the rerun finds it at the same place, and success removes it", async () => {
    project = await TempProject.create({ "pipeline.yaml": RESUMING })
    const first = await project.runJson()
    expect(first.code).toBe(1)
    expect(first.summary.stages.train).toMatchObject({ status: "failed", reason: "exited with code 3" })
    const fp = first.summary.stages.train?.fingerprint
    expect(fp).toMatch(/^[0-9a-f]{64}$/)
    const dir = project.path(`.pipeline/scratch/${fp}`)
    expect(readFileSync(`${dir}/checkpoint`, "utf8")).toBe("step-5\n")
    expect((await owners(project))[fp ?? ""]).toEqual({
      pipeline: project.path("pipeline.yaml"),
      stage: "train",
    })

    const second = await project.runJson()
    expect(second.code, second.stderr).toBe(0)
    expect(second.summary.stages.train).toMatchObject({ status: "ran", fingerprint: fp })
    expect(await project.read("model.txt")).toBe("resumed from step-5\n")
    expect(await project.read("scratch-paths.txt")).toBe(`${dir}\n${dir}\n`)
    expect(project.exists(`.pipeline/scratch/${fp}`)).toBe(false)
  })

  it("is not made for a command stage that does not ask for one", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `stages:
  plain:
    cmd: echo "[\${PIPELINE_SCRATCH-unset}]" > out.txt
    outs: [out.txt]
`,
    })
    const r = await project.runJson()
    expect(r.code, r.stderr).toBe(0)
    expect(await project.read("out.txt")).toBe("[unset]\n")
    expect(project.exists(".pipeline/scratch")).toBe(false)
  })

  it("is kept between the attempts of a stage that retries", async () => {
    project = await TempProject.create({
      "pipeline.yaml": RESUMING.replace(
        "    outs: [model.txt]\n",
        "    outs: [model.txt]\n    retries: 1\n    retry_delay: 10ms\n",
      ),
    })
    const r = await project.runJson()
    expect(r.code, r.stderr).toBe(0)
    expect(r.summary.stages.train?.status).toBe("ran")
    expect(await project.read("model.txt")).toBe("resumed from step-5\n")
  })

  it("survives an interruption, and the rerun resumes from it", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `stages:
  train:
    cmd: |
      if [ -f "$PIPELINE_SCRATCH/checkpoint" ]; then cp "$PIPELINE_SCRATCH/checkpoint" model.txt; exit 0; fi
      echo step-7 > "$PIPELINE_SCRATCH/checkpoint"
      echo "$PIPELINE_SCRATCH" > started.txt
      sleep 60 & wait
    outs: [model.txt]
    scratch: true
`,
    })
    const p = project
    const child = p.spawn(["run"])
    await until(() => p.exists("started.txt"), "the stage to write its checkpoint")
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)))
    child.kill("SIGINT")
    expect(await exited).toBe(130)
    const dir = (await p.read("started.txt")).trim()
    expect(readFileSync(`${dir}/checkpoint`, "utf8")).toBe("step-7\n")
    // the record of the cancelled stage has its fingerprint: gc tells its folder by it
    const { runs } = JSON.parse((await p.run(["runs", "--json"])).stdout) as { runs: Array<{ id: string }> }
    const record = JSON.parse(await p.read(`runs/${runs[0]?.id}/run.json`))
    expect(record.stages.train).toMatchObject({ status: "cancelled", fingerprint: basename(dir) })

    const again = await p.runJson()
    expect(again.code, again.stderr).toBe(0)
    expect(again.summary.stages.train).toMatchObject({ status: "ran", fingerprint: basename(dir) })
    expect(await p.read("model.txt")).toBe("step-7\n")
    expect(p.exists(`.pipeline/scratch/${basename(dir)}`)).toBe(false)
  }, 30_000)
})

describe("pipeline gc", () => {
  it("removes the scratch folders no run would resume from", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `params:
  lr: 1
stages:
  train:
    cmd: echo "lr \${params.lr}" > "$PIPELINE_SCRATCH/checkpoint"; exit 1
    outs: [model.txt]
    scratch: true
`,
    })
    const gc = async (...args: string[]) => JSON.parse((await project!.run(["gc", "--json", ...args])).stdout)
    const first = await project.runJson()
    const fp1 = first.summary.stages.train?.fingerprint
    // the last run of train failed with this fingerprint: the next one resumes from its folder
    expect(await gc()).toMatchObject({ removed_scratch_folders: 0 })
    expect(project.exists(`.pipeline/scratch/${fp1}/checkpoint`)).toBe(true)

    const second = await project.runJson(["--set", "lr=2"])
    const fp2 = second.summary.stages.train?.fingerprint
    expect(fp2).not.toBe(fp1)
    // train has run with other params since: the first folder is stale
    expect(await gc("--dry-run")).toMatchObject({ dry_run: true, removed_scratch_folders: 1 })
    expect(project.exists(`.pipeline/scratch/${fp1}`)).toBe(true)
    expect(await gc()).toMatchObject({ removed_scratch_folders: 1 })
    expect(project.exists(`.pipeline/scratch/${fp1}`)).toBe(false)
    // the journal is compacted to the folders still there
    expect(Object.keys(await owners(project))).toEqual([fp2])
    expect(await project.read(`.pipeline/scratch/${fp2}/checkpoint`)).toBe("lr 2\n")

    // --older-than takes every folder not used for that long, resumable or not
    expect(await gc("--older-than", "0s")).toMatchObject({ removed_scratch_folders: 1 })
    expect(project.exists(`.pipeline/scratch/${fp2}`)).toBe(false)
  })
})
