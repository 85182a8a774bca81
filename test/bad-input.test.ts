/**
 * The bad-input corpus, through the real CLI. Each folder under test/fixtures/bad/ is a small project:
 * `pipeline.yaml` (plus the files it needs), `case.json` (`exit`: 2 for a bad pipeline file or argument,
 * found before anything runs; 1 for bad data found by a stage at run time; `args`: extra `run` arguments;
 * `about`: what it tries) and `expected.txt`, the exact stderr of `pipeline run --json`, with the project's
 * path written `<project>`, run ids and durations masked, and progress lines (`[stage] step 1/2`) left out.
 * Data cases (`data-*`) run `validate.mjs` (beside the fixtures) as a command stage that checks a dataset;
 * the `ingest-*` cases give the same bad data to the built-in `ingest` stage kind.
 *
 * Every case also checks the `--json` output and that nothing entered the store: exit 2 writes nothing at
 * all (no store, no run record, no lock file), exit 1 stores nothing of the failed stage and leaves no
 * partial out.
 *
 * UPDATE_GOLDEN=1 npx vitest run test/bad-input.test.ts  rewrites expected.txt from the output.
 */
import { execFile } from "node:child_process"
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { bin } from "./support/project.js"

const FIXTURES = join(import.meta.dirname, "fixtures", "bad")
const UPDATE = process.env.UPDATE_GOLDEN === "1"
const scratch = mkdtempSync(join(tmpdir(), "pipeline-bad-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

interface Case {
  readonly exit: 1 | 2
  readonly args?: ReadonlyArray<string>
  readonly about?: string
}

const cases = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort()

const run = (cwd: string, args: ReadonlyArray<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [bin, "run", ...args, "--json"],
      { cwd, env: { ...process.env, NO_COLOR: "1" }, maxBuffer: 64 << 20 },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }),
    )
  })

/** Every file under `dir`, relative, sorted. */
const files = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort()

const normalise = (text: string, project: string): string =>
  text
    .replaceAll(project, "<project>")
    .replace(/\b\d{8}-\d{6}-\d{3}-[0-9a-f]{4}\b/g, "<run>")
    // progress lines come on their own channel (fd 3), so their place among the log lines varies
    .replace(/^\[[^\]]+\] step \d+(\/\d+)?( .*)?\n/gm, "")
    // durations of stages and runs, not those in messages (a hint may show "500ms")
    .replace(/^((?:ran|failed) +\S+) \d+(\.\d+)?m?s:/gm, "$1 <time>:")
    .replace(/ in \d+(\.\d+)?m?s:/g, " in <time>:")

describe("the bad-input corpus", () => {
  it("holds at least 40 cases, of both kinds", () => {
    expect(cases.length).toBeGreaterThanOrEqual(40)
    const exits = cases.map(
      (c) => (JSON.parse(readFileSync(join(FIXTURES, c, "case.json"), "utf8")) as Case).exit,
    )
    expect(new Set(exits)).toEqual(new Set([1, 2]))
  })
})

describe.concurrent("each bad input gets its exact message, its exit code, and nothing in the store", () => {
  it.each(cases)("%s", async (name) => {
    const fixture = join(FIXTURES, name)
    const spec = JSON.parse(readFileSync(join(fixture, "case.json"), "utf8")) as Case
    const project = join(scratch, name)
    cpSync(fixture, project, { recursive: true })
    rmSync(join(project, "case.json"))
    rmSync(join(project, "expected.txt"), { force: true })
    mkdirSync(join(project, ".git"))
    if (readFileSync(join(project, "pipeline.yaml"), "latin1").includes("validate.mjs"))
      cpSync(join(FIXTURES, "validate.mjs"), join(project, "validate.mjs"))
    const before = files(project)

    const r = await run(project, spec.args ?? [])

    expect(r.code, r.stderr).toBe(spec.exit)
    const stderr = normalise(r.stderr, project)
    const expectedFile = join(fixture, "expected.txt")
    if (UPDATE) writeFileSync(expectedFile, stderr)
    expect(stderr).toBe(readFileSync(expectedFile, "utf8"))
    const json = JSON.parse(r.stdout)
    if (spec.exit === 2) {
      expect(json.status).toBe("invalid")
      expect(json.errors.length).toBeGreaterThan(0)
      for (const e of json.errors as Array<{ message: string; hint: string; line: number; column: number }>) {
        expect(r.stderr).toContain(e.message)
        expect(r.stderr).toContain(e.hint)
        if (e.line > 0) expect(r.stderr).toContain(`:${e.line}:${e.column}: ${e.message}`)
      }
      // Found before anything ran: no store, no run record, no lock file, no out. Only the parse cache may
      // have noted a file that parsed.
      expect(files(project).filter((f) => !f.startsWith(".pipeline/cache/"))).toEqual(before)
    } else {
      expect(json.status).toBe("failed")
      expect(json.stages.check.status).toBe("failed")
      const store = join(project, ".pipeline", "store")
      expect(files(join(store, "objects"))).toEqual([])
      expect(existsSync(join(store, "runcache")) ? files(join(store, "runcache")) : []).toEqual([])
      expect(existsSync(join(project, "outputs", "split"))).toBe(false)
    }
  })
})
