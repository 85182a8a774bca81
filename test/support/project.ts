/**
 * The end-to-end test rig: a temporary project on disk and the real, built CLI (`dist/cli.mjs` through
 * `bin/pipeline.js`) run in it as a user would.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
export const bin = join(repoRoot, "bin", "pipeline.js")

/** The result of one CLI invocation. */
export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** A temporary project folder (with a `.git` marker so it is its own project root). */
export class TempProject {
  private constructor(readonly dir: string) {}

  static async create(files: Readonly<Record<string, string>> = {}): Promise<TempProject> {
    const dir = await mkdtemp(join(tmpdir(), "pipeline-e2e-"))
    await mkdir(join(dir, ".git"))
    const p = new TempProject(dir)
    for (const [path, text] of Object.entries(files)) await p.write(path, text)
    return p
  }

  path(rel: string): string {
    return join(this.dir, rel)
  }

  async write(rel: string, text: string): Promise<void> {
    await mkdir(dirname(this.path(rel)), { recursive: true })
    await writeFile(this.path(rel), text)
  }

  read(rel: string): Promise<string> {
    return readFile(this.path(rel), "utf8")
  }

  exists(rel: string): boolean {
    return existsSync(this.path(rel))
  }

  /** Run the CLI to completion. */
  run(args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}): Promise<CliResult> {
    return new Promise((res) => {
      execFile(
        process.execPath,
        [bin, ...args],
        { cwd: this.dir, env: { ...process.env, NO_COLOR: "1", ...env }, maxBuffer: 64 << 20 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === "number" ? error.code : 1) : 0
          res({ code, stdout, stderr })
        },
      )
    })
  }

  /** Start the CLI and return the child (for signals). */
  spawn(args: ReadonlyArray<string>): ChildProcess {
    return spawn(process.execPath, [bin, ...args], {
      cwd: this.dir,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    })
  }

  /** `run --json` and parse the summary. */
  async runJson(
    args: ReadonlyArray<string> = [],
  ): Promise<{ code: number; summary: RunSummary; stderr: string }> {
    const r = await this.run(["run", ...args, "--json"])
    let summary: RunSummary
    try {
      summary = JSON.parse(r.stdout) as RunSummary
    } catch {
      throw new Error(
        `run --json printed no JSON (exit ${r.code}).\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
      )
    }
    return { code: r.code, summary, stderr: r.stderr }
  }

  /** Delete a file or folder of the project. */
  async delete(rel: string): Promise<void> {
    await rm(this.path(rel), { recursive: true, force: true })
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true })
  }
}

/** `run --json`'s summary. */
export interface RunSummary {
  readonly run: string
  readonly status: string
  readonly stages: Record<
    string,
    { status: string; fingerprint: string | null; duration_ms: number; reason: string }
  >
}

/** The status of each stage in a summary, as a plain object for exact assertions. */
export const statuses = (s: RunSummary): Record<string, string> =>
  Object.fromEntries(Object.entries(s.stages).map(([k, v]) => [k, v.status]))

/** Resolve once `check` is true, polling the file system (no fixed sleeps: it returns as soon as it can). */
export const until = async (check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> => {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Whether a process is alive; a killed one its parent has not reaped yet (a zombie) counts as dead. */
export const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"
  } catch {
    return false
  }
}
