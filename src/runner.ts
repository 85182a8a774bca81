/**
 * The stage runner: starts one stage process (through execa) in its own process group, streams its output
 * line by line, reads its events channel, and kills the whole group when interrupted. The executor talks to
 * it through the `StageRunner` service so tests can swap in a fake.
 *
 * Events channel: every stage process gets file descriptor 3 open for writing (`PIPELINE_EVENTS_FD=3`).
 * Each line written there that is a JSON object becomes a `stage-progress` event, e.g.
 * `echo '{"step": 10, "total": 100, "loss": 0.42}' >&3`. Other lines are logged as warnings.
 */
import { createInterface } from "node:readline"
import type { Readable } from "node:stream"
import { Context, Data, Effect, Layer } from "effect"
import { execa } from "execa"

/** What to run. `shell` runs through `/bin/sh -c`, like DVC's `cmd`; `file` runs a program directly. */
export type ProcessCommand =
  | { readonly shell: string }
  | { readonly file: string; readonly args: ReadonlyArray<string> }

/** One process to run for a stage. */
export interface ProcessSpec {
  readonly command: ProcessCommand
  readonly cwd: string
  /** the complete environment: nothing else of the orchestrator's leaks in */
  readonly env: Readonly<Record<string, string>>
  readonly onOutput: (stream: "stdout" | "stderr", line: string) => void
  readonly onEvent: (data: Readonly<Record<string, unknown>>) => void
  /** called with the process group id once it started (recorded in the run record) */
  readonly onStart: (pgid: number) => void
}

/** The process exited non-zero, was killed by a signal, or could not start. */
export class ProcessFailed extends Data.TaggedError("ProcessFailed")<{
  readonly exitCode: number | undefined
  readonly signal: string | undefined
  readonly message: string
}> {}

/** Runs stage processes. */
export class StageRunner extends Context.Tag("pipeline/StageRunner")<
  StageRunner,
  { readonly run: (spec: ProcessSpec) => Effect.Effect<void, ProcessFailed> }
>() {}

/** How long a process group gets between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 3000

const signalGroup = (pgid: number, signal: NodeJS.Signals): boolean => {
  try {
    process.kill(-pgid, signal)
    return true
  } catch {
    return false // ESRCH: the group is gone
  }
}

const groupAlive = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0)
    return true
  } catch {
    return false
  }
}

/** SIGTERM the group, wait for the leader to exit (up to the grace period), then SIGKILL whatever is left. */
const killGroup = async (pgid: number, exited: Promise<unknown>): Promise<void> => {
  if (signalGroup(pgid, "SIGTERM")) {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, KILL_GRACE_MS)))])
    clearTimeout(timer)
  }
  signalGroup(pgid, "SIGKILL")
  // The leader is reaped by execa; wait until no member of the group remains.
  for (let i = 0; i < 200 && groupAlive(pgid); i++) await new Promise((r) => setTimeout(r, 10))
}

const readLines = (stream: Readable | null | undefined, onLine: (line: string) => void): void => {
  if (!stream) return
  createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on("line", onLine)
}

const start = (spec: ProcessSpec) => {
  // `/bin/sh -c` is what execa's `shell` option does; spelled out so both forms share one call.
  const [file, args] =
    "shell" in spec.command
      ? ["/bin/sh", ["-c", spec.command.shell]]
      : [spec.command.file, [...spec.command.args]]
  return execa(file, args, {
    cwd: spec.cwd,
    env: spec.env,
    extendEnv: false,
    detached: true, // its own process group, so a kill reaches every process it started
    cleanup: false,
    reject: false,
    buffer: false,
    stdio: ["ignore", "pipe", "pipe", "pipe"],
  })
}

/** The live runner: real subprocesses. */
export const runProcess = (spec: ProcessSpec): Effect.Effect<void, ProcessFailed> =>
  Effect.async<void, ProcessFailed>((resume) => {
    const sub = start(spec)
    const pgid = sub.pid
    const exited = new Promise<void>((r) => sub.once("exit", () => r()))
    readLines(sub.stdout, (line) => spec.onOutput("stdout", line))
    readLines(sub.stderr, (line) => spec.onOutput("stderr", line))
    readLines(sub.stdio[3] as Readable | undefined, (line) => {
      if (line.trim() === "") return
      try {
        const data: unknown = JSON.parse(line)
        if (data !== null && typeof data === "object" && !Array.isArray(data)) {
          spec.onEvent(data as Record<string, unknown>)
          return
        }
      } catch {}
      spec.onOutput(
        "stderr",
        `[pipeline] ignored a line on the events channel (fd 3) that is not a JSON object: ${line}`,
      )
    })
    if (pgid !== undefined) spec.onStart(pgid)
    let done = false
    void exited.then(() => {
      // Processes the stage left in the background would outlive it and hold its pipes open.
      if (pgid !== undefined) signalGroup(pgid, "SIGKILL")
    })
    void sub.then((result) => {
      done = true
      if (result.exitCode === 0) return resume(Effect.void)
      const signal = result.signal ?? undefined
      const message =
        result.exitCode === undefined && signal === undefined
          ? (result.shortMessage ?? "the process could not start")
          : signal !== undefined
            ? `killed by ${signal}`
            : `exited with code ${result.exitCode}`
      resume(Effect.fail(new ProcessFailed({ exitCode: result.exitCode, signal, message })))
    })
    return Effect.promise(async () => {
      if (done || pgid === undefined) return
      await killGroup(pgid, exited)
    })
  })

/** The live layer of `StageRunner`. */
export const StageRunnerLive = Layer.succeed(StageRunner, { run: runProcess })
