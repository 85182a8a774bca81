/**
 * The spawner protocol: what the orchestrator and its spawner process (`spawner.ts`) say to each other,
 * one JSON object per line. The orchestrator writes requests on the spawner's stdin; the spawner answers on
 * its stdout, every message naming the request it belongs to. Per request the spawner sends exactly one
 * `started` (then any number of `line`s, then one `exited`) or exactly one `failed`, in that order.
 *
 * Types only: the spawner's bundle stays free of anything the orchestrator loads.
 */

/** Start one stage process: a new process group (`setsid`), stdin closed, stdout/stderr/fd 3 piped. */
export interface SpawnRequest {
  /** the request's number, unique per spawner */
  readonly id: number
  readonly file: string
  readonly args: ReadonlyArray<string>
  readonly cwd: string
  /** the complete environment */
  readonly env: Readonly<Record<string, string>>
}

/** Which of the stage's pipes a line came from: stdout, stderr, or the events channel (fd 3). */
export type StageFd = 1 | 2 | 3

/** What the spawner reports. */
export type SpawnerMessage =
  /** the process started; its pid is its process group id */
  | { readonly t: "started"; readonly id: number; readonly pid: number }
  /** one line the process wrote, without its line break (split as `node:readline` does) */
  | { readonly t: "line"; readonly id: number; readonly fd: StageFd; readonly line: string }
  /**
   * the process exited and every pipe of its group is closed (what it left in the background was killed):
   * `code` when it exited, `signal` when a signal killed it
   */
  | {
      readonly t: "exited"
      readonly id: number
      readonly code: number | null
      readonly signal: string | null
    }
  /** the process could not be started (no `started` came before) */
  | { readonly t: "failed"; readonly id: number; readonly message: string }
