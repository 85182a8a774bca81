/**
 * The spawner process (`src/spawner.ts`, built to `dist/spawner.mjs`) and the stage runner on top of it: the
 * protocol, kills by process group, and a spawner that dies while stages run. Needs the built bundle
 * (`npm test` builds it first).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit, Fiber } from "effect"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { describeSpawner } from "../src/commands/doctor.js"
import { lineSplitter } from "../src/line-splitter.js"
import { type ProcessSpec, runProcess } from "../src/runner.js"
import {
  makeSpawnerPool,
  type SpawnerPool,
  type SpawnerProgram,
  spawnerProgram,
} from "../src/spawner-client.js"
import { encodeFrame, type StageFd } from "../src/spawner-protocol.js"
import { processAlive, repoRoot, TempProject, until } from "./support/project.js"

const entry = join(repoRoot, "dist", "spawner.mjs")
const native = join(repoRoot, "dist", "spawner-native")
/** Both spawner programs, where the native one was built (it needs a C compiler; `npm test` builds it). */
const programs: ReadonlyArray<SpawnerProgram> = [
  { kind: "node", path: entry },
  ...(existsSync(native) ? [{ kind: "native", path: native } as const] : []),
]
const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" }
/** What a run puts in its stages' environment, by which it finds their processes (`processes.ts`). */
const marks = { PIPELINE_RUN_ID: "20261129-000000-000-5a5a", PIPELINE_STAGE: "s" }

let dir = ""
let pool: SpawnerPool | undefined
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "pipeline-spawner-"))
})
afterEach(async () => {
  await pool?.close()
  pool = undefined
  await rm(dir, { recursive: true, force: true })
})

const pidIn = (file: string): number => Number(readFileSync(join(dir, file), "utf8").trim())
const hasPid = (file: string) => () => {
  try {
    return pidIn(file) > 0
  } catch {
    return false
  }
}

/** Everything the spawner reports for one request, in order. */
const record = (p: SpawnerPool, shell: string, cwd = dir): Promise<ReadonlyArray<string>> =>
  new Promise((resolve) => {
    const seen: string[] = []
    p.spawn(
      { file: "/bin/sh", args: ["-c", shell], cwd, env },
      {
        started: (pid) => seen.push(pid > 1 ? "started" : `started with pid ${pid}`),
        line: (fd: StageFd, line) => seen.push(`${fd}: ${line}`),
        exited: (code, signal) => resolve([...seen, `exited ${code} ${signal}`]),
        failed: (message) => resolve([...seen, `failed: ${message}`]),
        lost: (message) => resolve([...seen, `lost: ${message}`]),
      },
    )
  })

const spec = (shell: string, log: string[] = []): ProcessSpec => ({
  command: { shell },
  cwd: dir,
  env,
  onOutput: (stream, line) => log.push(`${stream}: ${line}`),
  onEvent: (data) => log.push(`event: ${JSON.stringify(data)}`),
  onStart: () => undefined,
})

/** `spec` with the marks of a run's stage in its environment. */
const markedSpec = (shell: string): ProcessSpec => ({ ...spec(shell), env: { ...env, ...marks } })

/** A stage that leaves a background process and writes its own pid and that process's. */
const LINGERING = "sleep 60 & echo $! > child.pid; echo $$ > shell.pid; wait"

const failureMessage = (exit: Exit.Exit<void, { readonly message: string }>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const failure = Cause.failureOption(exit.cause)
  return failure._tag === "Some" ? failure.value.message : Cause.pretty(exit.cause)
}

/**
 * Runs `LINGERING` (with a run's marks) on `p`, SIGKILLs the spawner once the stage has started, and checks
 * that the stage failed saying so and that none of its processes is left.
 */
const killSpawnerUnderStage = async (p: SpawnerPool): Promise<void> => {
  const fiber = Effect.runFork(Effect.exit(runProcess(p, markedSpec(LINGERING))))
  await until(() => hasPid("child.pid")() && hasPid("shell.pid")(), "the stage to start")
  const [spawner] = p.pids()
  process.kill(spawner ?? 0, "SIGKILL")
  const exit = await Effect.runPromise(Fiber.join(fiber))
  expect(failureMessage(exit)).toBe(
    `the process spawner (pid ${spawner}) was killed by SIGKILL while the stage ran; its processes were killed`,
  )
  for (const pid of [pidIn("child.pid"), pidIn("shell.pid")])
    expect(processAlive(pid), `pid ${pid}`).toBe(false)
}

describe("line splitting", () => {
  it("splits like node:readline: \\n, \\r\\n (also across chunks), a lone \\r, and a last line without a break", () => {
    const lines: string[] = []
    const s = lineSplitter((l) => lines.push(l))
    for (const chunk of ["a\nb\r", "\nc\rd", "", "\n\ne", "f"]) s.push(chunk)
    s.end()
    expect(lines).toEqual(["a", "b", "c", "d", "", "ef"])
  })
})

describe.each(programs)("the $kind spawner's protocol", (program) => {
  it("reports start, every line of stdout, stderr and fd 3 in order, then the exit code", async () => {
    pool = makeSpawnerPool(program, 1)
    const seen = await record(
      pool,
      "echo out; echo err >&2; echo '{\"step\": 1}' >&3; printf 'no newline'; exit 3",
    )
    expect(seen[0]).toBe("started")
    expect(seen.at(-1)).toBe("exited 3 null")
    // Each pipe keeps its own order; the three are read independently.
    const of = (fd: number) => seen.filter((l) => l.startsWith(`${fd}: `))
    expect([of(1), of(2), of(3)]).toEqual([["1: out", "1: no newline"], ["2: err"], ['3: {"step": 1}']])
  })

  it("relays a flood of output whole and in order, then the exit", async () => {
    pool = makeSpawnerPool(program, 1)
    // Far more than the pipes hold: the spawner pauses the stage's pipes while its own output drains.
    const seen = await record(pool, "seq 1 100000; seq 1 100000 >&2")
    const of = (fd: number) => seen.filter((l) => l.startsWith(`${fd}: `))
    const expected = (fd: number) => Array.from({ length: 100000 }, (_, i) => `${fd}: ${i + 1}`)
    expect(of(1)).toEqual(expected(1))
    expect(of(2)).toEqual(expected(2))
    expect(seen.at(-1)).toBe("exited 0 null")
  })

  it("reports a process killed by a signal, and one that cannot start", async () => {
    pool = makeSpawnerPool(program, 1)
    expect(await record(pool, "kill -TERM $$")).toEqual(["started", "exited null SIGTERM"])
    const missing = join(dir, "no-such-folder")
    expect(await record(pool, "true", missing)).toEqual([`failed: spawn /bin/sh ENOENT`])
  })

  it("uses one spawner for requests one after another, and up to its size for requests at the same time", async () => {
    pool = makeSpawnerPool(program, 2)
    await record(pool, "true")
    await record(pool, "true")
    expect(pool.pids()).toHaveLength(1)
    await Promise.all([record(pool, "true"), record(pool, "true"), record(pool, "true")])
    expect(pool.pids()).toHaveLength(2)
  })

  it("exits when its stdin is closed", async () => {
    pool = makeSpawnerPool(program, 1)
    await record(pool, "true")
    const [pid] = pool.pids()
    await pool.close()
    expect(processAlive(pid ?? 0)).toBe(false)
  })

  it("is killed when it does not exit after its stdin is closed", async () => {
    const stuck = join(dir, "stuck-spawner.mjs")
    writeFileSync(
      stuck,
      "process.stdin.resume(); process.stdin.on('end', () => {}); setInterval(() => {}, 1000)\n",
    )
    pool = makeSpawnerPool({ kind: "node", path: stuck }, 1, 50)
    pool.spawn(
      { file: "/bin/true", args: [], cwd: dir, env },
      { started: () => {}, line: () => {}, exited: () => {}, failed: () => {}, lost: () => {} },
    )
    const [pid] = pool.pids()
    await pool.close()
    expect(processAlive(pid ?? 0)).toBe(false)
  })
})

describe.each(programs)("what a stage process gets from the $kind spawner", (program) => {
  it("exactly the given environment, a session of its own, no blocked or ignored signals, fds 0-3", async () => {
    pool = makeSpawnerPool(program, 1)
    const seen = await record(
      pool,
      // /proc/$$: the shell's own; SigBlk/SigIgn in hex; field 6 of stat is the session id
      'env | sort; echo "sid=$(cut -d" " -f6 /proc/$$/stat) pid=$$"; ls /proc/$$/fd | sort -n | tr "\\n" " "; echo; read x || echo "stdin: eof"',
    )
    const out = seen.filter((l) => l.startsWith("1: ")).map((l) => l.slice(3))
    expect(
      out.filter((l) => /^[A-Z_]+=/.test(l) && !l.startsWith("PWD=") && !l.startsWith("SHLVL=")),
    ).toEqual([`PATH=${env.PATH}`])
    const ids = /^sid=(\d+) pid=(\d+)$/.exec(out.find((l) => l.startsWith("sid=")) ?? "")
    expect(ids?.[1]).toBe(ids?.[2])
    // The signals of the process as started (exec: the shell's own mask changes while it forks).
    const signals = (await record(pool, 'exec grep -E "^Sig(Blk|Ign)" /proc/self/status')).map((l) =>
      l.slice(3),
    )
    expect(signals).toContain("SigBlk:\t0000000000000000")
    // No classic signal is ignored. (glibc's posix_spawn leaves its two internal real-time signals, 32 and 33,
    // ignored in the child, as in every process GNU make starts; programs do not use them.)
    const ignored = BigInt(`0x${signals.find((l) => l.startsWith("SigIgn:"))?.slice(8) ?? "ff"}`)
    expect(ignored & 0x7fffffffn).toBe(0n)
    // 0-3 are the stage's; anything above was inherited from whatever started the test run
    const fds = (out.find((l) => /^\d+( \d+)* $/.test(l)) ?? "").trim().split(" ").map(Number)
    expect(fds.slice(0, 4)).toEqual([0, 1, 2, 3])
    expect(out).toContain("stdin: eof")
    expect(seen.at(-1)).toBe("exited 0 null")
  })

  it("relays lines byte for byte: quotes, backslashes, control characters, UTF-8, a line longer than a pipe", async () => {
    pool = makeSpawnerPool(program, 1)
    const seen = await record(
      pool,
      `printf '%s\\n' '"quoted" \\back\\slash' 'tab\there' '中文 ünïcödé 😀'; printf 'bell\\a.\\n'; head -c 200000 /dev/zero | tr '\\0' x; printf 'a\\rb\\r\\nc'`,
    )
    expect(seen.filter((l) => l.startsWith("1: "))).toEqual([
      '1: "quoted" \\back\\slash',
      "1: tab\there",
      "1: 中文 ünïcödé 😀",
      "1: bell\u0007.",
      `1: ${"x".repeat(200_000)}a`,
      "1: b",
      "1: c",
    ])
  })

  it("passes arguments and the working folder as given: spaces, newlines, UTF-8", async () => {
    pool = makeSpawnerPool(program, 1)
    const sub = join(dir, "a folder, é")
    mkdirSync(sub)
    const seen = await new Promise<ReadonlyArray<string>>((resolve) => {
      const lines: string[] = []
      pool?.spawn(
        {
          file: "/bin/sh",
          args: ["-c", 'pwd; printf "[%s]\\n" "$@"', "sh", "one two", "line1\nline2", "ü"],
          cwd: sub,
          env,
        },
        {
          started: () => {},
          line: (_fd, line) => lines.push(line),
          exited: () => resolve(lines),
          failed: (m) => resolve([m]),
          lost: (m) => resolve([m]),
        },
      )
    })
    expect(seen).toEqual([sub, "[one two]", "[line1", "line2]", "[ü]"])
  })
})

describe("choosing the spawner", () => {
  it("takes the native one when it was built, unless PIPELINE_SPAWNER=node", () => {
    expect(spawnerProgram(entry, { PIPELINE_SPAWNER: "node" })).toEqual({ kind: "node", path: entry })
    const elsewhere = join(dir, "spawner.mjs")
    expect(spawnerProgram(elsewhere, {})).toEqual({ kind: "node", path: elsewhere })
    expect(() => spawnerProgram(elsewhere, { PIPELINE_SPAWNER: "native" })).toThrow(
      `PIPELINE_SPAWNER=native, but ${join(dir, "spawner-native")} was not built: install a C compiler (cc) and run npm run build`,
    )
    if (existsSync(native)) expect(spawnerProgram(entry, {})).toEqual({ kind: "native", path: native })
    expect(() => spawnerProgram(entry, { PIPELINE_SPAWNER: "fast" })).toThrow(
      'PIPELINE_SPAWNER must be "node" or "native", got "fast"',
    )
  })

  it("is reported by pipeline doctor", () => {
    expect(describeSpawner(entry, { PIPELINE_SPAWNER: "node" })).toEqual({
      kind: "node",
      detail: `${entry} (PIPELINE_SPAWNER=node)`,
    })
    expect(describeSpawner(join(dir, "spawner.mjs"), { PIPELINE_SPAWNER: "native" }).kind).toBe("none")
    if (existsSync(native))
      expect(describeSpawner(entry, {})).toEqual({ kind: "native", detail: `${native} (posix_spawn)` })
  })

  it("frames requests for the native one: a byte count, then NUL-terminated fields, redirections last", () => {
    const frame = encodeFrame({
      id: 7,
      file: "/bin/sh",
      args: ["-c", "echo é\n"],
      cwd: "/p",
      env: { A: "1" },
    })
    const body = "7\0/bin/sh\x002\0-c\0echo é\n\0/p\x001\0A=1\x000\0"
    expect(frame.toString("utf8")).toBe(`${Buffer.byteLength(body)}\n${body}`)
    const redirected = encodeFrame({
      id: 8,
      file: "cat",
      args: ["a"],
      cwd: "/p",
      env: {},
      redirects: [
        { fd: 1, path: "out", mode: "write" },
        { fd: 2, path: "e r", mode: "append" },
      ],
    })
    const tail = "8\0cat\x001\0a\0/p\x000\x002\x001\0w\0out\x002\0a\0e r\0"
    expect(redirected.toString("utf8")).toBe(`${Buffer.byteLength(tail)}\n${tail}`)
    expect(() => encodeFrame({ id: 1, file: "a\0b", args: [], cwd: "/", env: {} })).toThrow(
      /NUL byte: "a\\u0000b"/,
    )
    expect(() => encodeFrame({ id: 1, file: "a", args: [], cwd: "/", env: { A: "x\0" } })).toThrow(
      /NUL byte: "A=x\\u0000"/,
    )
    expect(() =>
      encodeFrame({
        id: 1,
        file: "a",
        args: [],
        cwd: "/",
        env: {},
        redirects: [{ fd: 1, path: "o\0", mode: "write" }],
      }),
    ).toThrow(/NUL byte: "o\\u0000"/)
  })
})

describe.each(programs)("the stage runner on the $kind spawner", (program) => {
  it("turns fd 3 JSON objects into events and other lines into a warning", async () => {
    pool = makeSpawnerPool(program, 1)
    const log: string[] = []
    await Effect.runPromise(
      runProcess(pool, spec("echo '{\"loss\": 0.5}' >&3; echo hello; echo nope >&3", log)),
    )
    expect(log.sort()).toEqual([
      'event: {"loss":0.5}',
      "stderr: [pipeline] ignored a line on the events channel (fd 3) that is not a JSON object: nope",
      "stdout: hello",
    ])
  })

  it("fails with the exit code or the signal", async () => {
    pool = makeSpawnerPool(program, 1)
    const p = pool
    expect(failureMessage(await Effect.runPromiseExit(runProcess(p, spec("exit 4"))))).toBe(
      "exited with code 4",
    )
    expect(failureMessage(await Effect.runPromiseExit(runProcess(p, spec("kill -KILL $$"))))).toBe(
      "killed by SIGKILL",
    )
  })

  it("kills the stage's whole process group by its id when interrupted", async () => {
    pool = makeSpawnerPool(program, 1)
    const fiber = Effect.runFork(
      runProcess(pool, spec("sleep 60 & echo $! > child.pid; echo $$ > shell.pid; wait")),
    )
    await until(() => hasPid("child.pid")() && hasPid("shell.pid")(), "the stage to start")
    const pids = [pidIn("child.pid"), pidIn("shell.pid")]
    expect(Exit.isInterrupted(await Effect.runPromise(Fiber.interrupt(fiber)))).toBe(true)
    for (const pid of pids) expect(processAlive(pid), `pid ${pid}`).toBe(false)
  })

  it("kills what a stage left in the background once it exits", async () => {
    pool = makeSpawnerPool(program, 1)
    await Effect.runPromise(runProcess(pool, spec("sleep 60 & echo $! > child.pid")))
    // Killed before the exit is reported (its end closed the pipes); gone from /proc a moment later.
    await until(() => !processAlive(pidIn("child.pid")), "the background process to be gone")
  })

  it("fails the stages of a spawner that dies, kills their processes, and starts a new spawner after", async () => {
    pool = makeSpawnerPool(program, 1)
    const p = pool
    // With the marks a run gives its stages: on a busy machine the spawner can die between its fork and its
    // report of the pid, and then the processes are found by them ("a spawner that dies before it reports a
    // process" below takes that path on purpose).
    await killSpawnerUnderStage(p)
    expect(p.pids()).toEqual([])
    await Effect.runPromise(runProcess(p, spec("echo again > again.txt")))
    expect(readFileSync(join(dir, "again.txt"), "utf8")).toBe("again\n")
    expect(p.pids()).toHaveLength(1)
  })

  it("fails clearly when the spawner cannot start", async () => {
    pool = makeSpawnerPool({ kind: "node", path: join(dir, "missing-spawner.mjs") }, 1)
    const message = failureMessage(await Effect.runPromiseExit(runProcess(pool, spec("true"))))
    expect(message).toMatch(
      /^the process spawner \(pid \d+\) exited with code 1: .*Cannot find module .*missing-spawner\.mjs.* while the stage ran; its processes were killed$/,
    )
  })
})

describe("PIPELINE_SPAWNER", () => {
  let project: TempProject | undefined
  afterEach(async () => {
    await project?.remove()
    project = undefined
  })

  it("runs with either spawner, and rejects another value before anything runs (exit 2)", async () => {
    project = await TempProject.create({
      "pipeline.yaml": "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n",
    })
    const bad = await project.run(["run"], { PIPELINE_SPAWNER: "fast" })
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('PIPELINE_SPAWNER must be "node" or "native", got "fast"')
    expect(project.exists("a.txt")).toBe(false)
    for (const kind of programs.map((p) => p.kind)) {
      const r = await project.run(["run", "--force"], { PIPELINE_SPAWNER: kind })
      expect(r.code, r.stderr).toBe(0)
      expect(await project.read("a.txt")).toBe("a\n")
    }
  })
})

describe("a run whose spawner dies", () => {
  let project: TempProject | undefined
  afterEach(async () => {
    await project?.remove()
    project = undefined
  })

  /** The spawner started by the orchestrator `parent`, found through /proc. */
  const spawnerOf = (parent: number): number | undefined => {
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue
      try {
        const stat = readFileSync(`/proc/${name}/stat`, "utf8")
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
        const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8")
        if (ppid === parent && /spawner(\.mjs|-native)/.test(cmdline)) return Number(name)
      } catch {}
    }
    return undefined
  }

  it("fails the running stage with the reason, leaves nothing running, and exits 1", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  loop:
    cmd: sleep 60 & echo $! > child.pid; echo $$ > shell.pid; wait
    outs: [loop.txt]
  after:
    cmd: cat loop.txt > after.txt
    deps: [loop.txt]
    outs: [after.txt]
`,
    })
    const p = project
    const child = p.spawn(["run", "--json"])
    let stdout = ""
    let stderr = ""
    child.stdout?.on("data", (d) => (stdout += String(d)))
    child.stderr?.on("data", (d) => (stderr += String(d)))
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)))
    const read = (f: string) => Number(readFileSync(p.path(f), "utf8").trim())
    const has = (f: string) => p.exists(f) && read(f) > 0
    await until(() => has("child.pid") && has("shell.pid"), "the stage to start")
    const spawner = spawnerOf(child.pid ?? 0)
    expect(spawner).toBeGreaterThan(1)
    process.kill(spawner ?? 0, "SIGKILL")
    expect(await exited, stderr).toBe(1)
    const summary = JSON.parse(stdout)
    expect(summary.status).toBe("failed")
    expect(summary.stages.loop).toMatchObject({
      status: "failed",
      reason: `the process spawner (pid ${spawner}) was killed by SIGKILL while the stage ran; its processes were killed`,
    })
    expect(summary.stages.after.status).toBe("skipped")
    for (const pid of [read("child.pid"), read("shell.pid")])
      expect(processAlive(pid), `pid ${pid}`).toBe(false)
    expect((await p.run(["verify"])).code).toBe(0)
  })
})

describe("a spawner that dies before it reports a process", () => {
  it("still fails the stage and kills its processes, found by the run's marks in their environment", async () => {
    // It starts the process and dies without a word, as a real spawner can between its fork and its report.
    const silent = join(dir, "silent-spawner.mjs")
    writeFileSync(
      silent,
      `import { spawn } from "node:child_process"
let buffered = ""
process.stdin.setEncoding("utf8").on("data", (text) => {
  buffered += text
  const end = buffered.indexOf("\\n")
  if (end < 0) return
  const r = JSON.parse(buffered.slice(0, end))
  spawn(r.file, r.args, { cwd: r.cwd, env: r.env, detached: true, stdio: "ignore" }).unref()
})
`,
    )
    pool = makeSpawnerPool({ kind: "node", path: silent }, 1)
    const p = pool
    await killSpawnerUnderStage(p)
  })
})
