import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { normaliseDep, normaliseOut, type ProjectPaths, within } from "../src/paths.js"

const scratch = mkdtempSync(join(tmpdir(), "pipeline-paths-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))
const root = join(scratch, "project")
const outside = join(scratch, "outside")
mkdirSync(join(root, "real", "inner"), { recursive: true })
mkdirSync(outside)
symlinkSync(outside, join(root, "away"))
symlinkSync(join(root, "real"), join(root, "alias"))
symlinkSync(join(outside, "not-yet"), join(root, "dangling"))
symlinkSync("real/inner/later", join(root, "dangling-inside"))
const project: ProjectPaths = {
  root,
  pipelineFile: join(root, "pipelines", "train.yaml"),
  lockFile: join(root, "pipelines", "train.lock"),
}

const out = (p: string) => {
  const r = normaliseOut(p, project)
  return r.ok ? r.path : r.problem
}

describe("within", () => {
  it("compares whole path segments", () => {
    expect(within("data/a", "data")).toBe(true)
    expect(within("data", "data")).toBe(true)
    expect(within("database", "data")).toBe(false)
    expect(within("anything", ".")).toBe(true)
  })
})

describe("normaliseDep", () => {
  it("makes paths project-relative, keeping outside ones absolute", () => {
    expect(normaliseDep("./a//b/", project)).toEqual({ ok: true, path: "a/b" })
    expect(normaliseDep(join(root, "x", "y"), project)).toEqual({ ok: true, path: "x/y" })
    expect(normaliseDep("/datasets/wiki", project)).toEqual({ ok: true, path: "/datasets/wiki" })
    expect(normaliseDep("../outside/f", project)).toEqual({ ok: true, path: join(outside, "f") })
    expect(normaliseDep(root, project)).toEqual({ ok: true, path: "." })
  })
})

describe("normaliseOut", () => {
  it("accepts paths inside the project, through links that stay inside", () => {
    expect(out("./models//m.bin")).toBe("models/m.bin")
    expect(out("real/inner/")).toBe("real/inner")
    expect(out("alias/inner/x")).toBe("alias/inner/x")
    expect(out("pipelines/other.lock")).toBe("pipelines/other.lock")
    expect(out("dangling-inside")).toBe("dangling-inside")
  })

  it("refuses escapes, the root, pipeline's own files and links that lead out", () => {
    expect(out("a/../../x")).toBe("is outside the project")
    expect(out("/tmp/x")).toBe("is an absolute path")
    expect(out("a/..")).toBe("is the project root itself")
    expect(out(".git")).toBe('is inside ".git/", which is not the pipeline\'s to write')
    expect(out(".pipeline/store/x")).toBe('is inside ".pipeline/", which is not the pipeline\'s to write')
    expect(out("pipelines/train.yaml")).toBe("is the pipeline file")
    expect(out("pipelines")).toBe('contains the pipeline file "pipelines/train.yaml"')
    expect(out("pipelines/train.lock")).toBe("is the pipeline's lock file")
    expect(out("away/x/y")).toBe('leads outside the project through the symbolic link "away"')
    expect(out("away")).toBe('leads outside the project through the symbolic link "away"')
    expect(out("dangling")).toBe('leads outside the project through the symbolic link "dangling"')
    expect(out(" ")).toBe("is empty")
  })
})

describe("normaliseOut with a load's memo of links", () => {
  it("answers as without it, for every path, however often a folder comes up", () => {
    const links = new Map<string, boolean>()
    const memo = { ...project, links }
    const paths = ["away/x", "away/y/z", "real/inner/a", "real/inner/b", "alias/inner/c", "dangling", "away"]
    for (const p of [...paths, ...paths]) expect(normaliseOut(p, memo)).toEqual(normaliseOut(p, project))
    // each folder looked at once: "away" and "real" are in it, whatever the number of outs below them
    expect(links.get(join(root, "away"))).toBe(true)
    expect(links.get(join(root, "real"))).toBe(false)
  })
})
