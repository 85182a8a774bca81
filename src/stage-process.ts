/**
 * One attempt of a stage as processes: its environment (with, for a stage kind, the stage runner's spec),
 * its commands (each shell command in turn, or the stage runner for a kind), its output and progress
 * turned into events, and its timeout.
 */
import { join } from "node:path"
import { Duration, Effect } from "effect"
import type { EventSink } from "./events.js"
import type { Stage } from "./model.js"
import { type ProcessCommand, ProcessFailed, type StageRunner } from "./runner.js"
import { stageEnv } from "./stage-env.js"

/** Where and how one attempt of a stage runs. */
export interface StageAttempt {
  readonly root: string
  readonly runId: string
  readonly fingerprint: string
  /** its scratch folder, absolute, if it has one */
  readonly scratch: string | undefined
  /** device ids of the GPUs given to it */
  readonly gpus: ReadonlyArray<number>
  /** the built stage-runner entry point, for stage kinds */
  readonly stageRunner: string
  /** the orchestrator's environment, filtered by the allow-list */
  readonly parentEnv: Readonly<Record<string, string | undefined>>
  /** every line the stage prints, for its log */
  readonly writeLog: (line: string) => void
  /** called with each process group id as it starts */
  readonly onProcess?: (stage: string, pgid: number) => void
}

const commandsOf = (stage: Stage, stageRunner: string): ReadonlyArray<ProcessCommand> =>
  stage.action._tag === "Command"
    ? stage.action.cmd.map((shell) => ({ shell }))
    : [{ file: process.execPath, args: [stageRunner] }]

/** The complete environment of the attempt's processes. */
const environment = (stage: Stage, a: StageAttempt): Readonly<Record<string, string>> => {
  const env = stageEnv(stage, { root: a.root, runId: a.runId, gpus: a.gpus, scratch: a.scratch }, a.parentEnv)
  const { action } = stage
  if (action._tag !== "Builtin") return env
  // what the stage runner reads (src/stage-runner.ts)
  const spec = {
    kind: action.uses,
    ...(action.module === undefined ? {} : { module: join(a.root, action.module) }),
    fingerprint: a.fingerprint,
    with: action.with,
    deps: stage.deps,
    outs: stage.outs,
  }
  return { ...env, PIPELINE_STAGE_SPEC: JSON.stringify(spec) }
}

/** Run one attempt of `stage`: its processes one after another, within its timeout. */
export const runStageProcesses = (
  stage: Stage,
  attempt: StageAttempt,
  runner: StageRunner["Type"],
  events: EventSink["Type"],
): Effect.Effect<void, ProcessFailed> => {
  const env = environment(stage, attempt)
  const step = (command: ProcessCommand) =>
    runner.run({
      command,
      cwd: attempt.root,
      env,
      onOutput: (stream, line) => {
        attempt.writeLog(line)
        events.emit({ type: "stage-output", stage: stage.name, stream, line })
      },
      onEvent: (data) => events.emit({ type: "stage-progress", stage: stage.name, data }),
      onStart: (pgid) => attempt.onProcess?.(stage.name, pgid),
    })
  const commands = commandsOf(stage, attempt.stageRunner)
  const steps = commands.length === 1 ? step(commands[0]!) : Effect.forEach(commands, step, { discard: true })
  const { timeoutMs } = stage
  return timeoutMs === undefined
    ? steps
    : steps.pipe(
        Effect.timeoutFail({
          duration: Duration.millis(timeoutMs),
          onTimeout: () =>
            new ProcessFailed({
              exitCode: undefined,
              signal: undefined,
              message: `timed out after ${Duration.format(Duration.millis(timeoutMs))}`,
            }),
        }),
      )
}
