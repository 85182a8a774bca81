/**
 * End-to-end: a user's own stage kind (`uses: ./kinds/shout.mjs`) through the real CLI — it runs in the
 * stage runner with the built-in kinds' context, is cached and rerun like one, and every problem with the
 * module is reported before anything runs. The exact messages are golden-tested in errors-golden.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest"
import { statuses, TempProject } from "./support/project.js"

let project: TempProject | undefined
afterEach(async () => {
  await project?.remove()
  project = undefined
})

/** A kind that upper-cases a text file and reports what it was given in `seen.json`, beside its out. */
const SHOUT = `import { readFile, writeFile } from "node:fs/promises"
import { dirname, join } from "node:path"
import { suffix } from "./suffix.mjs"

export const definition = {
  kind: "shout",
  version: "1",
  description: "Upper-cases a text file.",
  schema: {
    type: "object",
    additionalProperties: false,
    required: ["input"],
    properties: {
      input: { type: "string", description: "The text file to shout." },
      exclaim: { type: "integer", minimum: 0, default: 1, description: "How many exclamation marks to add." },
      out_dir: { type: "string", description: "Where to write shout.txt." },
    },
  },
  outs: (args, outDir) => [\`\${outDir}/shout.txt\`, \`\${outDir}/seen.json\`],
  deps: (args) => [args.input],
}

export async function run(ctx) {
  const text = await readFile(join(ctx.root, ctx.args.input), "utf8")
  if (text.trim() === "") {
    const e = new Error(\`\${ctx.args.input} is empty: give shout some text\`)
    e.name = "StageInputError"
    throw e
  }
  if (text.startsWith("crash")) throw new TypeError("the shouting broke")
  ctx.progress({ step: 1, total: 1 })
  await writeFile(ctx.outs[0], text.trim().toUpperCase() + "!".repeat(ctx.args.exclaim) + suffix + "\\n")
  await writeFile(join(ctx.scratch, "note"), "scratch is writable")
  await writeFile(
    ctx.outs[1],
    JSON.stringify({
      args: ctx.args,
      deps: ctx.deps,
      outs: ctx.outs,
      root: ctx.root,
      fingerprint: ctx.fingerprint,
      scratch: ctx.scratch,
      scratchDir: dirname(ctx.scratch),
    }),
  )
}
`

const PIPELINE = `stages:
  loud:
    uses: ./kinds/shout.mjs
    with:
      input: hello.txt
  shown:
    cmd: cat \${stages.loud.outs[0]} > shown.txt
    outs: [shown.txt]
`

const shoutProject = (pipeline = PIPELINE) =>
  TempProject.create({
    "pipeline.yaml": pipeline,
    "kinds/shout.mjs": SHOUT,
    "kinds/suffix.mjs": 'export const suffix = ""\n',
    "hello.txt": "hello\n",
  })

describe("a user's kind module", () => {
  it("runs in the stage runner with the built-in kinds' context", async () => {
    project = await shoutProject()
    const r = await project.runJson()
    expect(r.code, r.stderr).toBe(0)
    expect(statuses(r.summary)).toEqual({ loud: "ran", shown: "ran" })
    expect(await project.read("shown.txt")).toBe("HELLO!\n")
    expect(r.stderr).toContain("[loud] step 1/1")
    const seen = JSON.parse(await project.read("outputs/pipeline/loud/seen.json"))
    const fingerprint = r.summary.stages.loud?.fingerprint
    expect(seen).toEqual({
      args: { input: "hello.txt", exclaim: 1 },
      // the module is a dep for the fingerprint only: the kind is given what it reads
      deps: [project.path("hello.txt")],
      outs: [
        project.path("outputs/pipeline/loud/shout.txt"),
        project.path("outputs/pipeline/loud/seen.json"),
      ],
      root: project.dir,
      fingerprint,
      scratch: project.path(`.pipeline/scratch/${fingerprint}`),
      scratchDir: project.path(".pipeline/scratch"),
    })
    // the stage succeeded: its scratch folder is gone
    expect(project.exists(`.pipeline/scratch/${fingerprint}`)).toBe(false)
    const lock = await project.read("pipeline.lock")
    expect(lock).toContain("path: kinds/shout.mjs")
  })

  it("is cached, and reruns when the module changes (a helper it imports only when listed in deps)", async () => {
    project = await shoutProject()
    expect((await project.runJson()).code).toBe(0)
    const again = await project.runJson()
    expect(statuses(again.summary)).toEqual({ loud: "cached", shown: "cached" })

    await project.write("kinds/shout.mjs", SHOUT.replace('version: "1"', 'version: "2"'))
    const status = JSON.parse((await project.run(["status", "--json"])).stdout)
    expect(status.stages.loud.reasons).toEqual(["dep kinds/shout.mjs changed"])
    const edited = await project.runJson()
    expect(edited.code, edited.stderr).toBe(0)
    expect(edited.summary.stages.loud).toMatchObject({ status: "ran", reason: "dep kinds/shout.mjs changed" })
    // same bytes out: the stage after it stays cached (early cutoff)
    expect(edited.summary.stages.shown?.status).toBe("cached")

    // A file the module imports is not seen...
    await project.write("kinds/suffix.mjs", 'export const suffix = "?"\n')
    expect(statuses((await project.runJson()).summary)).toEqual({ loud: "cached", shown: "cached" })
    // ...until the stage lists it in deps.
    await project.write(
      "pipeline.yaml",
      PIPELINE.replace("      input: hello.txt\n", "      input: hello.txt\n    deps: [kinds/suffix.mjs]\n"),
    )
    const listed = await project.runJson()
    expect(statuses(listed.summary)).toEqual({ loud: "ran", shown: "ran" })
    expect(await project.read("shown.txt")).toBe("HELLO!?\n")
  })

  it("reverting the module restores the earlier outputs from the store", async () => {
    project = await shoutProject()
    await project.runJson()
    await project.write("kinds/shout.mjs", SHOUT.replace('\\n")', '\\n\\n")'))
    expect((await project.runJson()).summary.stages.loud?.status).toBe("ran")
    await project.write("kinds/shout.mjs", SHOUT)
    expect((await project.runJson()).summary.stages.loud?.status).toBe("restored")
  })

  it("checks with: against the module's schema before anything runs", async () => {
    project = await shoutProject(PIPELINE.replace("input: hello.txt", "inptu: hello.txt\n      exclaim: -1"))
    const r = await project.run(["run"])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`pipeline.yaml:5:7: unknown key "inptu" in "with" of stage "loud"
    5 |       inptu: hello.txt
      |       ~~~~~
   Did you mean "input"?

pipeline.yaml:6:16: "with.exclaim" of stage "loud" must be at least 0 (got -1)
    6 |       exclaim: -1
      |                ~~
   Write a number of at least 0 here: how many exclamation marks to add.
`)
    expect(project.exists(".pipeline/store")).toBe(false)
    expect(project.exists("runs")).toBe(false)
  })

  it("reports a module that cannot be used at its uses: value, with exit 2", async () => {
    const cases: ReadonlyArray<readonly [string, string, string]> = [
      ["kinds/gone.mjs", "", 'kind module "./kinds/gone.mjs" of stage "loud" does not exist'],
      ["kinds/shout.ts", "export const x: number = 1\n", "is TypeScript, which pipeline does not load"],
      [
        "kinds/broken.mjs",
        "export const definition = {\n  kind: 'x'\n  version: '1',\n}\n",
        "cannot be imported: SyntaxError: Unexpected identifier 'version' (kinds/broken.mjs:3:3)",
      ],
      [
        "kinds/throws.mjs",
        "\nthrow new RangeError('no shouting today')\n",
        "cannot be imported: RangeError: no shouting today (kinds/throws.mjs:2:7)",
      ],
      [
        "kinds/half.mjs",
        "export const definition = { kind: 'half', version: '1', description: '', outs: () => [], deps: () => [] }\n",
        "is not a stage kind: it exports no `run` function",
      ],
    ]
    project = await shoutProject()
    for (const [path, text, message] of cases) {
      if (text !== "") await project.write(path, text)
      await project.write("pipeline.yaml", PIPELINE.replace("./kinds/shout.mjs", `./${path}`))
      const r = await project.run(["run", "--json"])
      expect(r.code, path).toBe(2)
      expect(r.stderr, path).toContain(message)
      expect(r.stderr, path).toContain(
        `    3 |     uses: ./${path}\n      |           ${"~".repeat(path.length + 2)}\n`,
      )
      expect(JSON.parse(r.stdout).errors[0]).toMatchObject({ file: "pipeline.yaml", line: 3, column: 11 })
    }
    expect(project.exists("runs")).toBe(false)
  })

  it("a failing run() shows the module's message: without a stack for a StageInputError, with one otherwise", async () => {
    project = await shoutProject()
    await project.write("hello.txt", "  \n")
    const empty = await project.run(["run"])
    expect(empty.code).toBe(1)
    expect(empty.stderr).toContain("[loud] error: hello.txt is empty: give shout some text\n")
    expect(empty.stderr).not.toContain("    at ")

    await project.write("hello.txt", "crash\n")
    const crash = await project.run(["run"])
    expect(crash.code).toBe(1)
    expect(crash.stderr).toContain("[loud] error: TypeError: the shouting broke\n")
    expect(crash.stderr).toMatch(/\[loud\] {5}at run \(file:\/\/.*\/kinds\/shout\.mjs:\d+:\d+\)/)
    expect(crash.stderr).toContain("failed    loud")
  })

  it("may be CommonJS: module.exports = { definition, run }", async () => {
    project = await TempProject.create({
      "pipeline.yaml": "stages:\n  hi:\n    uses: ./kinds/hi.js\n    with: {name: Ada}\n",
      "kinds/hi.js": `const { writeFileSync } = require("node:fs")
module.exports = {
  definition: {
    kind: "hi",
    version: "1",
    description: "Greets.",
    outs: (args, outDir) => [outDir + "/hi.txt"],
    deps: () => [],
  },
  run: async (ctx) => writeFileSync(ctx.outs[0], "hi " + ctx.args.name + "\\n"),
}
`,
    })
    const r = await project.runJson()
    expect(r.code, r.stderr).toBe(0)
    expect(await project.read("outputs/pipeline/hi/hi.txt")).toBe("hi Ada\n")
  })
})
