/**
 * Golden tests of every invalid-pipeline message. Each folder under test/fixtures/errors/ is a small
 * project: `pipeline.yaml` (plus any files it needs), `case.json` (`tag`: the expected error class;
 * `sets`: raw --set arguments) and `expected.txt`, the exact rendered message. The project is copied into
 * a temporary folder, so a test can add what a fixture cannot hold (a symbolic link) and check that
 * loading wrote nothing.
 *
 * UPDATE_GOLDEN=1 npx vitest run test/errors-golden.test.ts  rewrites expected.txt from the output.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { renderInvalid } from "../src/diagnostic.js"
import { loadPipeline } from "../src/spec.js"

const FIXTURES = join(import.meta.dirname, "fixtures", "errors")
const UPDATE = process.env.UPDATE_GOLDEN === "1"
const scratch = mkdtempSync(join(tmpdir(), "pipeline-golden-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

// What fixtures cannot hold portably, made in the copied project before loading.
const setups: Readonly<Record<string, (project: string) => void>> = {
  "out-through-symlink": (project) => {
    const outside = mkdtempSync(join(scratch, "outside-"))
    symlinkSync(outside, join(project, "shared"), "dir")
  },
  "kind-module-through-symlink": (project) => {
    const outside = mkdtempSync(join(scratch, "outside-"))
    writeFileSync(join(outside, "shout.mjs"), 'throw new Error("imported from outside the project")\n')
    symlinkSync(outside, join(project, "kinds"), "dir")
  },
}

// Every path under `dir` with its size and modification time: loading must leave all of it alone.
const snapshot = (dir: string): string =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((e) => join(e.parentPath, e.name))
    .sort()
    .join("\n")

interface Case {
  readonly tag: string
  readonly sets?: ReadonlyArray<string>
}

const cases = readdirSync(FIXTURES).sort()

describe("invalid pipelines render exactly as expected.txt", () => {
  it("has a fixture for every error the loader reports", () => {
    expect(cases.length).toBeGreaterThanOrEqual(40)
  })

  it.each(cases)("%s", async (name) => {
    const fixture = join(FIXTURES, name)
    const spec = JSON.parse(readFileSync(join(fixture, "case.json"), "utf8")) as Case
    const project = join(scratch, name)
    cpSync(fixture, project, { recursive: true })
    setups[name]?.(project)
    const before = snapshot(project)

    const exit = await Effect.runPromiseExit(
      loadPipeline({
        file: join(project, "pipeline.yaml"),
        cwd: project,
        root: project,
        sets: spec.sets ?? [],
      }),
    )

    expect(snapshot(project)).toBe(before)
    if (Exit.isSuccess(exit)) throw new Error(`${name}: the pipeline loaded, but it should be invalid`)
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "None")
      throw new Error(`${name}: died instead of failing: ${Cause.pretty(exit.cause)}`)
    expect(failure.value._tag).toBe(spec.tag)
    const rendered = `${renderInvalid(failure.value, { cwd: project })}\n`
    const expectedFile = join(fixture, "expected.txt")
    if (UPDATE) writeFileSync(expectedFile, rendered)
    expect(rendered).toBe(readFileSync(expectedFile, "utf8"))
  })
})
