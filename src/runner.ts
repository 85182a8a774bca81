/**
 * The stage runner: starts one stage process in its own process group (through a spawner process, see
 * `spawner.ts`), streams its output line by line, reads its events channel, and kills the whole group when
 * interrupted. The executor talks to it through the `StageRunner` service so tests can swap in a fake.
 *
 * Events channel: every stage process gets file descriptor 3 open for writing (`PIPELINE_EVENTS_FD=3`).
 * Each line written there that is a JSON object becomes a `stage-progress` event, e.g.
 * `echo '{"step": 10, "total": 100, "loss": 0.42}' >&3`. Other lines are logged as warnings.
 *
 * Kills do not go through the spawner: the orchestrator signals the stage's process group itself, so Ctrl-C,
 * timeouts and fail-fast behave the same whatever state the spawner is in. A spawner that dies fails the
 * stages it was running, and their process groups are killed.
 */
import { realpathSync } from "node:fs"
import { Context, Data, Effect, Layer } from "effect"
import { endLeftovers } from "./processes.js"
import { parseSimpleCommand } from "./simple-command.js"
import {
  makeSpawnerPool,
  type SpawnerPool,
  type SpawnerProgram,
  type SpawnHandlers,
} from "./spawner-client.js"
import type { SpawnRequest } from "./spawner-protocol.js"

/**
 * What to run. `shell` runs through `/bin/sh -c`, like DVC's `cmd` (a simple command is started without the
 * shell, to the same effect: `simple-command.ts`); `file` runs a program directly.
 */
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

/** Wait (up to 2 s) until no member of the group remains: killed processes may still hold files open. */
const groupGone = async (pgid: number): Promise<void> => {
  for (let i = 0; i < 200 && groupAlive(pgid); i++) await new Promise((r) => setTimeout(r, 10))
}

/** SIGTERM the group, wait for the leader to exit (up to the grace period), then SIGKILL whatever is left. */
const killGroup = async (pgid: number, exited: Promise<unknown>): Promise<void> => {
  if (signalGroup(pgid, "SIGTERM")) {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, KILL_GRACE_MS)))])
    clearTimeout(timer)
  }
  signalGroup(pgid, "SIGKILL")
  // The leader is reaped by the spawner; wait until no member of the group remains.
  await groupGone(pgid)
}

const onEventLine = (spec: ProcessSpec, line: string): void => {
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
}

const failed = (exitCode: number | undefined, signal: string | undefined, message: string) =>
  Effect.fail(new ProcessFailed({ exitCode, signal, message }))

/** Each folder's physical path: what the shell puts in PWD (`getcwd`). Stage folders do not move in a run. */
const physical = new Map<string, string>()

/**
 * The request that runs a shell command without the shell, when that changes nothing
 * (`simple-command.ts`): the program is found on an absolute PATH as the shell would (the spawner searches
 * the stage's PATH; a relative entry would be searched from another folder), and it gets the PWD the shell
 * would have added. Undefined when the shell is needed.
 */
const directRequest = (
  shell: string,
  cwd: string,
  env: Readonly<Record<string, string>>,
): Omit<SpawnRequest, "id"> | undefined => {
  const simple = parseSimpleCommand(shell)
  if (simple === undefined || env.PWD !== undefined) return undefined
  const [program, ...args] = simple.argv
  if (
    !program.includes("/") &&
    (env.PATH === undefined || env.PATH.split(":").some((d) => !d.startsWith("/")))
  )
    return undefined
  let pwd = physical.get(cwd)
  if (pwd === undefined) {
    try {
      pwd = realpathSync(cwd)
    } catch {
      return undefined // the shell's own error says it best
    }
    physical.set(cwd, pwd)
  }
  return { file: program, args, cwd, env: { ...env, PWD: pwd }, redirects: simple.redirects }
}

/** Run one process through a spawner of `pool`. */
export const runProcess = (pool: SpawnerPool, spec: ProcessSpec): Effect.Effect<void, ProcessFailed> =>
  Effect.async<void, ProcessFailed>((resume) => {
    // `/bin/sh -c` is what a shell option does; spelled out so both forms share one request.
    const throughShell: Omit<SpawnRequest, "id"> =
      "shell" in spec.command
        ? { file: "/bin/sh", args: ["-c", spec.command.shell], cwd: spec.cwd, env: spec.env }
        : { file: spec.command.file, args: [...spec.command.args], cwd: spec.cwd, env: spec.env }
    const direct = "shell" in spec.command ? directRequest(spec.command.shell, spec.cwd, spec.env) : undefined
    /** what to start if the direct start fails: the same command through the shell */
    let retry = direct === undefined ? undefined : throughShell
    let pgid: number | undefined
    let done = false
    let started!: (pgid: number | undefined) => void
    const whenStarted = new Promise<number | undefined>((r) => (started = r))
    let exited!: () => void
    const whenExited = new Promise<void>((r) => (exited = r))
    const finish = (result: Effect.Effect<void, ProcessFailed>) => {
      done = true
      started(pgid)
      exited()
      resume(result)
    }
    const handlers: SpawnHandlers = {
      started: (pid) => {
        pgid = pid
        spec.onStart(pid)
        started(pid)
      },
      line: (fd, line) =>
        fd === 3 ? onEventLine(spec, line) : spec.onOutput(fd === 1 ? "stdout" : "stderr", line),
      exited: (code, signal) =>
        finish(
          code === 0
            ? Effect.void
            : signal !== null
              ? failed(undefined, signal, `killed by ${signal}`)
              : failed(code ?? undefined, undefined, `exited with code ${code}`),
        ),
      failed: (message) => {
        // Started directly, it could not be (no such program, a script without `#!`, a redirection that
        // cannot be opened): the shell runs it, or says what is wrong in its own words.
        if (retry !== undefined) {
          const request = retry
          retry = undefined
          pool.spawn(request, handlers)
        } else finish(failed(undefined, undefined, `the process could not start: ${message}`))
      },
      lost: (message) => {
        // Nothing will report this process's end any more: make sure it has one.
        const kill = async () => {
          if (pgid !== undefined) {
            signalGroup(pgid, "SIGKILL")
            await groupGone(pgid)
          } else {
            // Lost between its fork and the spawner's report of it: found by the marks in its environment.
            const runId = spec.env.PIPELINE_RUN_ID
            const stage = spec.env.PIPELINE_STAGE
            if (runId !== undefined && stage !== undefined) await endLeftovers(runId, 2000, stage)
          }
        }
        void kill().then(() =>
          finish(failed(undefined, undefined, `${message} while the stage ran; its processes were killed`)),
        )
      },
    }
    pool.spawn(direct ?? throughShell, handlers)
    return Effect.promise(async () => {
      if (done) return
      const group = await whenStarted
      if (done || group === undefined) return
      await killGroup(group, whenExited)
    })
  })

/** The live layer of `StageRunner`: stage processes started by up to `spawners` spawner processes. */
export const stageRunnerLive = (program: SpawnerProgram, spawners: number): Layer.Layer<StageRunner> =>
  Layer.scoped(
    StageRunner,
    Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => makeSpawnerPool(program, spawners)),
        (pool) => Effect.promise(() => pool.close()),
      ),
      (pool) => ({ run: (spec: ProcessSpec) => runProcess(pool, spec) }),
    ),
  )
