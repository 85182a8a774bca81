/**
 * Events the executor emits while a run progresses. Reporters render them; the core never prints.
 */
import { Context } from "effect"
import type { RunStatus, StageStatus } from "./status.js"

/** Everything that happens during a run, in the order it happens. */
export type RunEvent =
  | {
      readonly type: "run-started"
      readonly runId: string
      readonly pipeline: string
      readonly stages: ReadonlyArray<string>
    }
  /**
   * the project lock was taken over from a run that was killed before it finished; `ended` lists the stage
   * process groups it had left running, ended before this run touched the workspace
   */
  | {
      readonly type: "interrupted-run"
      readonly runId: string | undefined
      readonly pid: number
      readonly ended: ReadonlyArray<{ readonly stage: string; readonly pgid: number }>
    }
  | { readonly type: "stage-started"; readonly stage: string; readonly attempt: number }
  | {
      readonly type: "stage-output"
      readonly stage: string
      readonly stream: "stdout" | "stderr"
      readonly line: string
    }
  /** a JSON object the stage wrote to its events channel (fd 3): progress, metrics */
  | {
      readonly type: "stage-progress"
      readonly stage: string
      readonly data: Readonly<Record<string, unknown>>
    }
  /** an out that matched nothing in the store was saved before it was replaced */
  | {
      readonly type: "out-saved"
      readonly stage: string
      readonly path: string
      readonly digest: string
    }
  | {
      readonly type: "stage-retry"
      readonly stage: string
      readonly attempt: number
      readonly delayMs: number
      readonly reason: string
    }
  | {
      readonly type: "stage-finished"
      readonly stage: string
      readonly status: StageStatus
      readonly reason: string
      readonly durationMs: number
    }
  | {
      readonly type: "run-finished"
      readonly runId: string
      readonly status: RunStatus
      readonly durationMs: number
    }

/** Where the executor sends its events (reporters subscribe here). */
export class EventSink extends Context.Tag("pipeline/EventSink")<
  EventSink,
  { readonly emit: (event: RunEvent) => void }
>() {}
