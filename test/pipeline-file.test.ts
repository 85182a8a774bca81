import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Either } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { findProjectRoot, lockFileFor, resolvePipelineFile } from "../src/pipeline-file.js"

const dir = mkdtempSync(join(tmpdir(), "pipeline-file-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const touch = (path: string) => {
  mkdirSync(join(path, ".."), { recursive: true })
  writeFileSync(path, "")
}

const resolveIn = (arg: string | undefined, cwd: string) =>
  Effect.runSync(Effect.either(resolvePipelineFile(arg, cwd)))

describe("resolvePipelineFile", () => {
  const project = join(dir, "project")
  touch(join(project, "pipeline.yaml"))
  touch(join(project, "pipelines", "train.yaml"))
  touch(join(project, "pipelines", "eval.yml"))
  touch(join(project, "other", "pipeline.yaml"))
  touch(join(project, "custom.yaml"))

  it("takes pipeline.yaml when no argument is given", () => {
    expect(resolveIn(undefined, project)).toEqual(Either.right(join(project, "pipeline.yaml")))
  })

  it("takes an existing path, or a folder's pipeline.yaml", () => {
    expect(resolveIn("custom.yaml", project)).toEqual(Either.right(join(project, "custom.yaml")))
    expect(resolveIn(join(project, "custom.yaml"), "/")).toEqual(Either.right(join(project, "custom.yaml")))
    expect(resolveIn("other", project)).toEqual(Either.right(join(project, "other", "pipeline.yaml")))
  })

  it("takes a bare name from pipelines/", () => {
    expect(resolveIn("train", project)).toEqual(Either.right(join(project, "pipelines", "train.yaml")))
    expect(resolveIn("eval", project)).toEqual(Either.right(join(project, "pipelines", "eval.yml")))
  })

  it("lists the pipelines when the name is unknown", () => {
    const result = resolveIn("trian", project)
    if (Either.isRight(result)) throw new Error("expected a usage error")
    expect([result.left.message, result.left.hint]).toEqual([
      'pipeline "trian" not found',
      "Pipelines in pipelines/: eval, train. Pass one of these names or the path of a pipeline file.",
    ])
    const empty = resolveIn(undefined, join(project, "pipelines"))
    if (Either.isRight(empty)) throw new Error("expected a usage error")
    expect(empty.left.hint).toBe("Create pipeline.yaml here, or pass the path of a pipeline file.")
  })
})

describe("findProjectRoot", () => {
  it("prefers the explicit root", () => {
    expect(findProjectRoot("/x/y/pipeline.yaml", "/elsewhere")).toBe("/elsewhere")
  })

  it("walks up to the nearest marker", () => {
    const root = join(dir, "marked")
    mkdirSync(join(root, ".pipeline"), { recursive: true })
    touch(join(root, "pipelines", "nested", "p.yaml"))
    expect(findProjectRoot(join(root, "pipelines", "nested", "p.yaml"), undefined)).toBe(root)
    touch(join(root, "pipelines", "package.json"))
    expect(findProjectRoot(join(root, "pipelines", "nested", "p.yaml"), undefined)).toBe(
      join(root, "pipelines"),
    )
  })
})

describe("lockFileFor", () => {
  it("puts the lock file beside the pipeline", () => {
    expect(lockFileFor("/p/pipelines/train.yaml")).toBe("/p/pipelines/train.lock")
    expect(lockFileFor("/p/pipeline.yml")).toBe("/p/pipeline.lock")
  })
})
