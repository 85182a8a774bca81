/**
 * Simple commands run without a shell (`src/simple-command.ts`, used by `src/runner.ts`): the parser's
 * answers, and, through both spawners, that a command started directly does exactly what `/bin/sh -c` does
 * with it (output, exit, files written, environment), checked against the real shell on seeded random
 * commands. Needs the built bundle (`npm test` builds it first).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type ProcessCommand, runProcess } from "../src/runner.js"
import { parseSimpleCommand } from "../src/simple-command.js"
import { makeSpawnerPool, type SpawnerPool, type SpawnerProgram } from "../src/spawner-client.js"
import { repoRoot } from "./support/project.js"

describe("parseSimpleCommand", () => {
  it("reads words, quotes and redirections as the shell does", () => {
    expect(parseSimpleCommand("cat in/0.txt > out/0.txt")).toEqual({
      argv: ["cat", "in/0.txt"],
      redirects: [{ fd: 1, path: "out/0.txt", mode: "write" }],
    })
    expect(parseSimpleCommand(`  python3\ttrain.py --lr=0.1 'a b' "c'd" x'y z'"w" ''  `)).toEqual({
      argv: ["python3", "train.py", "--lr=0.1", "a b", "c'd", "xy zw", ""],
      redirects: [],
    })
    expect(parseSimpleCommand("sort <in >>log 2>err 0<in2 1>o a>b")).toEqual({
      argv: ["sort", "a"],
      redirects: [
        { fd: 0, path: "in", mode: "read" },
        { fd: 1, path: "log", mode: "append" },
        { fd: 2, path: "err", mode: "write" },
        { fd: 0, path: "in2", mode: "read" },
        { fd: 1, path: "o", mode: "write" },
        { fd: 1, path: "b", mode: "write" },
      ],
    })
    // digits not right before the operator are an argument; redirections may come first
    expect(parseSimpleCommand("> out seq 2 >x")).toEqual({
      argv: ["seq", "2"],
      redirects: [
        { fd: 1, path: "out", mode: "write" },
        { fd: 1, path: "x", mode: "write" },
      ],
    })
    expect(parseSimpleCommand("./run.sh 'it''s'")).toEqual({ argv: ["./run.sh", "its"], redirects: [] })
    // a quoted number is a word, not a descriptor
    expect(parseSimpleCommand("cat '2'>f")).toEqual({
      argv: ["cat", "2"],
      redirects: [{ fd: 1, path: "f", mode: "write" }],
    })
  })

  it("leaves everything else to the shell", () => {
    for (const cmd of [
      "",
      "   ",
      "> out",
      "echo hi",
      "printf x",
      "cd dir",
      "true",
      "test -f x",
      "[ -f x ]",
      "if x",
      "FOO=1 cmd",
      "> o FOO=1 cmd",
      "'A=1' cmd",
      "cat $HOME",
      'cat "$x"',
      'cat "a\\b"',
      "cat `x`",
      "cat a\\ b",
      "cat *.txt",
      "cat a?",
      "cat [ab]",
      "cat ~/x",
      "cat a # note",
      "a; b",
      "a && b",
      "a | b",
      "a &",
      "(a)",
      "{ a; }",
      "a\nb",
      "cat 'open",
      'cat "open',
      "cat 2>&1",
      "cat >&2",
      "cat <&0",
      "cat <<EOF",
      "cat <>f",
      "cat >|f",
      "cat 3>f",
      "cat 12>f",
      "cat >",
      "cat > ''",
      "cat > > f",
      "cat é",
      "!x",
    ])
      expect(parseSimpleCommand(cmd), JSON.stringify(cmd)).toBeUndefined()
  })
})

const native = join(repoRoot, "dist", "spawner-native")
const programs: ReadonlyArray<SpawnerProgram> = [
  { kind: "node", path: join(repoRoot, "dist", "spawner.mjs") },
  ...(existsSync(native) ? [{ kind: "native", path: native } as const] : []),
]

let root = ""
let bin = ""
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "pipeline-simple-"))
  bin = join(root, "bin")
  mkdirSync(bin)
  // A program that shows what it got: its arguments, its stdin, and a line on stderr.
  writeFileSync(
    join(bin, "show-args"),
    `#!/bin/sh\nfor a in "$@"; do printf '<%s>\\n' "$a"; done\ncat\necho "to stderr" >&2\n`,
  )
  chmodSync(join(bin, "show-args"), 0o755)
  // A script without `#!`: only a shell runs it (exec gives ENOEXEC).
  writeFileSync(join(bin, "no-shebang"), "echo run by a shell\n")
  chmodSync(join(bin, "no-shebang"), 0o755)
})
afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})

/** Everything observable of one run of `command` in a fresh folder with the given files. */
const observe = async (
  pool: SpawnerPool,
  command: ProcessCommand,
  files: Readonly<Record<string, string>>,
): Promise<Record<string, unknown>> => {
  const cwd = await mkdtemp(join(root, "run-"))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(cwd, name), text)
  const stdout: string[] = []
  const stderr: string[] = []
  let pgid = 0
  const exit = await Effect.runPromiseExit(
    runProcess(pool, {
      command,
      cwd,
      env: { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`, LANG: "C" },
      onOutput: (stream, line) => (stream === "stdout" ? stdout : stderr).push(line.replaceAll(cwd, "<cwd>")),
      onEvent: () => undefined,
      onStart: (pid) => {
        pgid = pid
      },
    }),
  )
  const written = Object.fromEntries(
    readdirSync(cwd)
      .sort()
      .map((name) => [name, readFileSync(join(cwd, name), "utf8").replaceAll(cwd, "<cwd>")]),
  )
  await rm(cwd, { recursive: true, force: true })
  return {
    stdout,
    stderr,
    written,
    pgid: pgid > 1,
    exit: Exit.isSuccess(exit) ? "ok" : Cause.squash(exit.cause),
  }
}

// Pieces of commands, chosen to meet every rule of the parser: plain words (digits among them, to make
// descriptors), quoted text with characters the shell treats specially, redirections (targets are plain names
// inside the run's folder), and shell syntax the parser must refuse.
const plain = fc.stringMatching(/^[A-Za-z0-9_@%+=:,.-]{1,5}$/)
const quotedChar = fc.constantFrom(
  "a",
  " ",
  "\t",
  "$",
  "`",
  "\\",
  '"',
  "*",
  ";",
  "|",
  "&",
  "<",
  ">",
  "#",
  "~",
  "é",
)
const single = fc.array(quotedChar, { maxLength: 4 }).map((cs) => `'${cs.join("")}'`)
const double = fc
  .array(fc.oneof(quotedChar, fc.constant("'")), { maxLength: 4 })
  .map((cs) => `"${cs.filter((c) => c !== '"').join("")}"`)
const word = fc.array(fc.oneof({ weight: 4, arbitrary: plain }, single, double), {
  minLength: 1,
  maxLength: 3,
})
const target = fc.constantFrom("o1", "o2", "'o 3'", '"o4"', "in", "in2", "missing/x")
const redirect = fc
  .tuple(
    fc.constantFrom(">", ">>", "<", "2>", "1>", "0<", "2>>", "3>", ">&", "<&"),
    fc.constantFrom("", " "),
    target,
  )
  .map(([op, gap, t]) => `${op}${gap}${t}`)
// (no `|` or `&`: what the processes of a pipeline or a background job print depends on timing)
const shellSyntax = fc.constantFrom(";", "$X", "*", "~", "#c", "`x`", "\\a", "a=b", "(", "\n")
const separator = fc.constantFrom(" ", " ", " ", "\t", "  ", "")
const commandText = fc
  .tuple(
    fc.constantFrom(
      "show-args",
      "'show-args'",
      'show-"args"',
      "no-shebang",
      "no-such-program",
      "env",
      "cat",
      "echo",
    ),
    fc.array(
      fc.tuple(
        separator,
        fc.oneof(
          { weight: 6, arbitrary: word.map((w) => w.join("")) },
          { weight: 3, arbitrary: redirect },
          shellSyntax,
        ),
      ),
      { maxLength: 6 },
    ),
  )
  // the first piece apart from the program's name, which it would otherwise change
  .map(
    ([program, rest]) =>
      `${program}${rest.map(([sep, piece], i) => `${i === 0 && sep === "" ? " " : sep}${piece}`).join("")}`,
  )

describe.each(programs)("a command started without the shell, on the $kind spawner", (program) => {
  let pool: SpawnerPool
  beforeAll(() => {
    pool = makeSpawnerPool(program, 1)
  })
  afterAll(async () => {
    await pool.close()
  })
  const files = { in: "first input\n", in2: "second input\n" }

  it("is started without a shell: it leads its own process group", async () => {
    const stat = async (command: ProcessCommand) => {
      const seen = await observe(pool, command, {})
      // /proc/self/stat: "pid (comm) state ppid pgrp ..."
      const line = String((seen.stdout as string[])[0])
      const [pid, , , , pgrp] = line.split(" ")
      return pid === pgrp
    }
    expect(await stat({ shell: "cat /proc/self/stat" })).toBe(true)
    expect(await stat({ file: "/bin/sh", args: ["-c", "cat /proc/self/stat"] })).toBe(false)
  })

  it("gets the environment the shell would give it (PWD added)", async () => {
    const direct = await observe(pool, { shell: "env" }, {})
    const shell = await observe(pool, { file: "/bin/sh", args: ["-c", "env"] }, {})
    const sorted = (seen: Record<string, unknown>) => [...(seen.stdout as string[])].sort()
    expect(sorted(direct)).toEqual(sorted(shell))
    expect(sorted(direct)).toContain("PWD=<cwd>")
  })

  it("falls back to the shell when it cannot be started, which then says why in its own words", async () => {
    for (const cmd of ["no-such-program a", "no-shebang", "show-args > missing/x", "show-args < missing"]) {
      const direct = await observe(pool, { shell: cmd }, files)
      expect(direct, cmd).toEqual(await observe(pool, { file: "/bin/sh", args: ["-c", cmd] }, files))
    }
    expect((await observe(pool, { shell: "no-shebang" }, files)).stdout).toEqual(["run by a shell"])
    const missing = await observe(pool, { shell: "no-such-program" }, files)
    expect(String(missing.exit)).toMatch(/exited with code 127/)
    expect(missing.stderr).toEqual(["/bin/sh: 1: no-such-program: not found"])
  })

  it("does what /bin/sh -c does, on random commands", async () => {
    let direct = 0
    await fc.assert(
      fc.asyncProperty(commandText, async (cmd) => {
        if (parseSimpleCommand(cmd) !== undefined) direct++
        const ours = await observe(pool, { shell: cmd }, files)
        const shells = await observe(pool, { file: "/bin/sh", args: ["-c", cmd] }, files)
        // `env` lists the environment in no particular order
        if (cmd.startsWith("env")) for (const seen of [ours, shells]) (seen.stdout as string[]).sort()
        expect(ours, JSON.stringify(cmd)).toEqual(shells)
      }),
      { seed: 20261129, numRuns: 150 },
    )
    // the property must have exercised the direct path, not only the shell's
    expect(direct).toBeGreaterThan(40)
  })
})
