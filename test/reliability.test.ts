/**
 * Reliability through the real CLI: two runs at once on one project, stale and damaged project locks,
 * store objects corrupted on disk, and a file system that fills up (a real one: a 1 MiB tmpfs mounted in a
 * private mount namespace by test/support/full-disk.mjs).
 */
import { type ChildProcess, spawnSync } from "node:child_process"
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { bin, repoRoot, statuses, TempProject, until } from "./support/project.js"

let project: TempProject | undefined
const children: ChildProcess[] = []
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  await project?.remove()
  project = undefined
})

/** A stage that announces itself and waits for the file `go`: it holds the run open for as long as a test needs. */
const blocking = `
stages:
  block:
    cmd: touch started; while [ ! -f go ]; do sleep 0.01; done; echo ok > out.txt
    outs: [out.txt]
`

const exited = (child: ChildProcess) =>
  new Promise<number | null>((r) =>
    child.exitCode !== null ? r(child.exitCode) : child.on("exit", (code) => r(code)),
  )

const storeFiles = (p: TempProject): string[] =>
  p.exists(".pipeline/store/objects")
    ? readdirSync(p.path(".pipeline/store"), { recursive: true, encoding: "utf8" }).sort()
    : []

/** A pid that is certainly not alive: a process that has exited. */
const deadPid = (): number => {
  const r = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" })
  return Number(r.stdout.trim())
}

describe("two runs at once", () => {
  it("the second fails at once naming the holder; after the holder is killed, its stale lock is taken over", async () => {
    project = await TempProject.create({ "pipeline.yaml": blocking })
    const p = project
    const first = p.spawn(["run"])
    children.push(first)
    await until(() => p.exists("started"), "the first run's stage to start")
    const lock = JSON.parse(await p.read(".pipeline/run.lock"))
    expect(lock).toMatchObject({ pid: first.pid, command: "run" })
    const filesBefore = storeFiles(p)
    const runsBefore = readdirSync(p.path("runs"))

    const second = await p.run(["run", "--json"])
    expect(second.code).toBe(1)
    expect(second.stderr).toBe(
      `error: another run holds this project (pid ${first.pid}, started ${lock.startedAt}).\n` +
        `   Wait for it to finish; if no such process exists, delete ${p.path(".pipeline/run.lock")}.\n`,
    )
    expect(second.stdout).toBe("")
    // gc waits for nothing either, and neither touched the store or wrote a run record.
    expect((await p.run(["gc"])).stderr).toContain(`another run holds this project (pid ${first.pid}`)
    expect(storeFiles(p)).toEqual(filesBefore)
    expect(readdirSync(p.path("runs"))).toEqual(runsBefore)

    first.kill("SIGKILL")
    await exited(first)
    expect(p.exists(".pipeline/run.lock")).toBe(true) // left behind: nobody released it
    await p.write("go", "")
    const third = await p.runJson()
    expect(third.code, third.stderr).toBe(0)
    expect(third.stderr).toMatch(
      new RegExp(
        `^note: run \\S+ \\(pid ${first.pid}\\) was killed before it finished; took over its lock`,
        "m",
      ),
    )
    expect(statuses(third.summary)).toEqual({ block: "ran" })
    expect(p.exists(".pipeline/run.lock")).toBe(false)
  })

  it("of two runs started together against a stale lock, exactly one takes it over", async () => {
    project = await TempProject.create({ "pipeline.yaml": blocking })
    const p = project
    for (let round = 0; round < 2; round++) {
      await p.delete("started")
      await p.delete("go")
      await p.delete("out.txt")
      await p.write(
        ".pipeline/run.lock",
        JSON.stringify({ pid: deadPid(), startedAt: "2020-01-01T00:00:00.000Z", command: "run" }),
      )
      const a = p.spawn(["run", "--force"])
      const b = p.spawn(["run", "--force"])
      children.push(a, b)
      const loser = await Promise.race([exited(a).then(() => a), exited(b).then(() => b)])
      const winner = loser === a ? b : a
      expect(loser.exitCode, `round ${round}`).toBe(1)
      expect(JSON.parse(await p.read(".pipeline/run.lock")).pid).toBe(winner.pid)
      await until(() => p.exists("started"), "the winner's stage to start")
      await p.write("go", "")
      expect(await exited(winner)).toBe(0)
      expect(await p.read("out.txt")).toBe("ok\n")
    }
    expect((await p.run(["verify"])).code).toBe(0)
  })

  it("a damaged or hostile lock file is stale, never obeyed", async () => {
    project = await TempProject.create({
      "pipeline.yaml": "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n",
    })
    const p = project
    for (const text of [
      "",
      "{not json",
      JSON.stringify({ pid: 0, startedAt: "x" }), // kill(0) would ask about our own group
      JSON.stringify({ pid: -1, startedAt: "x" }), // kill(-1) about every process
      JSON.stringify({ pid: 1.5 }),
      JSON.stringify({ pid: "123" }),
      JSON.stringify({ pid: deadPid(), runId: "../../../../tmp/x" }),
    ]) {
      await p.write(".pipeline/run.lock", text)
      const r = await p.runJson(["--force"])
      expect(r.code, `${text}: ${r.stderr}`).toBe(0)
      expect(p.exists(".pipeline/run.lock")).toBe(false)
    }
  })
})

describe("a lock taken on another machine", () => {
  it("is never taken for stale: its pid means nothing here", async () => {
    project = await TempProject.create({ "pipeline.yaml": blocking })
    const p = project
    const pid = deadPid()
    await p.write(
      ".pipeline/run.lock",
      JSON.stringify({
        pid,
        startedAt: "2020-01-01T00:00:00.000Z",
        command: "run",
        host: "elsewhere.example",
      }),
    )
    const r = await p.run(["run"])
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(
      `error: another run holds this project (pid ${pid} on elsewhere.example, started 2020-01-01T00:00:00.000Z).\n` +
        `   Wait for it to finish; if no such process exists, delete ${p.path(".pipeline/run.lock")}.\n`,
    )
  })
})

describe("a corrupted store object", () => {
  const pipeline = `
params:
  n: 1
stages:
  file:
    cmd: echo \${params.n} > n.txt
    outs: [n.txt]
    params: [n]
  folder:
    cmd: mkdir -p parts && echo part-\${params.n} > parts/a && echo x > parts/b
    outs: [parts]
    params: [n]
`
  /** The object of a digest, made writable for the test to damage it. */
  const objectOf = (p: TempProject, digest: string): string => {
    const path = p.path(`.pipeline/store/objects/${digest.slice(0, 2)}/${digest.slice(2)}`)
    chmodSync(path, 0o644)
    return path
  }
  const lockDigests = (text: string): Record<string, string> =>
    Object.fromEntries(
      [...text.matchAll(/- path: (\S+)\n\s+kind: \w+\n\s+digest: (\w+)/g)].map((m) => [m[1]!, m[2]!]),
    )

  it("is detected when restored, reported, discarded, and its stage runs again", async () => {
    project = await TempProject.create({ "pipeline.yaml": pipeline })
    const p = project
    expect((await p.runJson()).code).toBe(0)
    const one = lockDigests(await p.read("pipeline.lock"))
    expect((await p.runJson(["--set", "n=2"])).code).toBe(0)
    // Damage what restoring n=1 needs: the file out truncated, the folder's manifest altered in place.
    truncateSync(objectOf(p, one["n.txt"]!), 0)
    const manifest = objectOf(p, one.parts!)
    const bytes = readFileSync(manifest)
    bytes[0] = bytes[0]! ^ 1
    writeFileSync(manifest, bytes)

    const back = await p.runJson()
    expect(back.code, back.stderr).toBe(0)
    expect(statuses(back.summary)).toEqual({ file: "ran", folder: "ran" })
    for (const [stage, digest] of [
      ["file", one["n.txt"]!],
      ["folder", one.parts!],
    ] as const)
      expect(back.stderr).toContain(
        `[${stage}] [pipeline] store object ${digest.slice(0, 12)} is corrupt (${p.path(`.pipeline/store/objects/${digest.slice(0, 2)}/${digest.slice(2)}`)}); it was removed, run again to rebuild it; running the stage instead\n`,
      )
    expect(await p.read("n.txt")).toBe("1\n")
    expect(await p.read("parts/a")).toBe("part-1\n")
    // The rerun put correct copies back: the store verifies, and the next revert restores cleanly.
    expect((await p.run(["verify"])).code).toBe(0)
    expect(statuses((await p.runJson(["--set", "n=2"])).summary)).toEqual({
      file: "restored",
      folder: "restored",
    })
  })

  it("a file inside a folder out altered in the store is caught the same way", async () => {
    project = await TempProject.create({ "pipeline.yaml": pipeline })
    const p = project
    await p.runJson()
    const partA = spawnSync("sha256sum", [p.path("parts/a")], { encoding: "utf8" }).stdout.split(" ")[0]!
    await p.runJson(["--set", "n=2"])
    writeFileSync(objectOf(p, partA), "part-9\n") // same size, other bytes
    const r = await p.runJson()
    expect(statuses(r.summary)).toEqual({ file: "restored", folder: "ran" })
    expect(r.stderr).toContain(`store object ${partA.slice(0, 12)} is corrupt`)
    expect(await p.read("parts/a")).toBe("part-1\n")
  })

  it("verify --repair removes bad objects and the run-cache entries that point at them", async () => {
    project = await TempProject.create({ "pipeline.yaml": pipeline })
    const p = project
    await p.runJson()
    const one = lockDigests(await p.read("pipeline.lock"))
    await p.runJson(["--set", "n=2"])
    writeFileSync(objectOf(p, one["n.txt"]!), "tampered\n")
    // the live entries of the run-cache journal: the last line for a fingerprint wins
    const entries = () => {
      const live = new Map<string, boolean>()
      for (const line of readFileSync(p.path(".pipeline/store/runcache/journal.jsonl"), "utf8").split("\n"))
        if (line !== "") {
          const v = JSON.parse(line) as { fingerprint: string; deleted?: boolean }
          live.set(v.fingerprint, v.deleted !== true)
        }
      return [...live].filter(([, alive]) => alive)
    }
    expect(entries()).toHaveLength(4)
    const repair = await p.run(["verify", "--repair", "--json"])
    expect(repair.code).toBe(0)
    const report = JSON.parse(repair.stdout)
    expect(report).toMatchObject({ corrupt: [one["n.txt"]], repaired: true })
    expect(report.dropped_run_cache).toHaveLength(1)
    expect(entries()).toHaveLength(3)
    expect(p.exists(`.pipeline/store/objects/${one["n.txt"]!.slice(0, 2)}/${one["n.txt"]!.slice(2)}`)).toBe(
      false,
    )
    // n=1 of `file` is no longer restorable: status says stale, and the run executes it.
    const status = JSON.parse((await p.run(["status", "--json"])).stdout)
    expect(status.stages.file.state).toBe("stale")
    expect(status.stages.folder.state).toBe("restorable")
  })
})

/** How to get a private mount namespace here: `unshare -m` as root, else a user namespace if allowed. */
const namespace = ((): string[] | undefined => {
  const candidates = process.getuid?.() === 0 ? [["-m"], ["-Urm"]] : [["-Urm"]]
  return candidates.find((args) => spawnSync("unshare", [...args, "true"]).status === 0)
})()

describe("a full disk", () => {
  it.skipIf(namespace === undefined)(
    "fails the stage with a message naming it and the path; no partial object; earlier outputs intact",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "pipeline-full-"))
      try {
        const r = spawnSync(
          "unshare",
          [...namespace!, "--", process.execPath, join(repoRoot, "test/support/full-disk.mjs"), bin, dir],
          { encoding: "utf8" },
        )
        expect(r.status, r.stderr).toBe(0)
        const result = JSON.parse(r.stdout)
        expect(result.mounted, result.why).toBe(true)

        // The store fills up while saving the out of `big`.
        const s = result.store
        expect(s.first).toBe(0)
        expect(s.full.code).toBe(1)
        expect(s.full.stderr).toMatch(
          new RegExp(
            `^failed    big \\d+ms: no space left on device while writing ${s.project}/\\.pipeline/store/objects/[0-9a-f]{2}/[0-9a-f]{62}$`,
            "m",
          ),
        )
        expect(s.full.stderr).toContain('skipped   size: upstream stage "big" failed\n')
        expect(s.store.tmp).toEqual([])
        expect(s.store.objects.every((o: { intact: boolean }) => o.intact)).toBe(true)
        expect(s.store.objects).toHaveLength(3) // small, big (100 kB) and size: nothing of the 450 kB one
        expect(s.after).toEqual(s.before) // other outs and the lock file untouched
        expect(s.verify).toBe(0)

        // The workspace fills up while restoring `big`: the old out stays whole, no temp file is left.
        const w = result.restore
        expect(w.setup).toEqual([0, 0])
        expect(w.full.code).toBe(1)
        expect(w.full.stderr).toContain(`failed    big `)
        expect(w.full.stderr).toContain(`: no space left on device while writing ${w.project}/big.txt\n`)
        expect(w.after).toEqual({ bigIntact: true, size: "200000\n", hidden: [] })
        expect(w.store.objects.every((o: { intact: boolean }) => o.intact)).toBe(true)
        expect(w.store.tmp).toEqual([])
        // With room again, the same run restores.
        expect(w.freed.code, w.freed.stderr).toBe(0)
        expect(w.freed.bigLength).toBe(600_000)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  )
})
