/**
 * The environment a stage process sees: an allow-list of the orchestrator's variables, the stage's declared
 * `env`, and the `PIPELINE_*` variables that tell it where it runs. Nothing else leaks in, so a stage cannot
 * depend on (or be broken by) a variable that is not in its fingerprint.
 */
import type { Stage } from "./model.js"

/** The orchestrator's variables passed through to every stage, when set. */
export const PASSTHROUGH_ENV: ReadonlyArray<string> = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LANGUAGE",
  "LC_ALL",
  "LC_CTYPE",
  "LC_NUMERIC",
  "LC_MESSAGES",
  "TZ",
  "TMPDIR",
  "TERM",
]

/** Where a stage runs. */
export interface StageContext {
  readonly root: string
  readonly runId: string
  /** device ids of the GPUs given to this stage (empty: none) */
  readonly gpus: ReadonlyArray<number>
  /** the stage's scratch folder, absolute, if it has one */
  readonly scratch: string | undefined
}

/**
 * The allow-listed part of `parent`, as a plain object: worked out once per run, since reading
 * `process.env` goes through a getter per variable.
 */
export const passthroughEnv = (
  parent: Readonly<Record<string, string | undefined>>,
): Readonly<Record<string, string>> => {
  const env: Record<string, string> = Object.create(null)
  for (const name of PASSTHROUGH_ENV) {
    const v = parent[name]
    if (v !== undefined) env[name] = v
  }
  return env
}

/** Build a stage's complete environment. */
export const stageEnv = (
  stage: Stage,
  ctx: StageContext,
  parent: Readonly<Record<string, string | undefined>>,
): Record<string, string> => {
  const env: Record<string, string> = Object.create(null)
  for (const name of PASSTHROUGH_ENV) {
    const v = parent[name]
    if (v !== undefined) env[name] = v
  }
  Object.assign(env, stage.env)
  env.PIPELINE_STAGE = stage.name
  env.PIPELINE_ROOT = ctx.root
  env.PIPELINE_RUN_ID = ctx.runId
  env.PIPELINE_PARAMS = JSON.stringify(stage.params)
  env.PIPELINE_EVENTS_FD = "3"
  if (ctx.scratch !== undefined) env.PIPELINE_SCRATCH = ctx.scratch
  if (ctx.gpus.length > 0) {
    const ids = ctx.gpus.join(",")
    env.PIPELINE_GPUS = ids
    env.CUDA_VISIBLE_DEVICES = ids
  }
  return env
}
