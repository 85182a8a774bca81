/**
 * What every command gets from the composition root, and the shape of a command.
 */
import type { Effect } from "effect"
import type { UsageError } from "../errors.js"

/** A writable text stream (process.stdout/stderr, or a buffer in tests). */
export interface Out {
  write(text: string): unknown
}

/** The outside world, as the CLI hands it to a command. */
export interface CliContext {
  readonly argv: ReadonlyArray<string>
  readonly cwd: string
  readonly env: Readonly<Record<string, string | undefined>>
  readonly stdout: Out
  readonly stderr: Out
  /** stderr is an interactive terminal that takes colour */
  readonly tty: boolean
  /** the built stage-runner entry point (dist/stage-runner.mjs), started for built-in stages */
  readonly stageRunner: string
  /** the built spawner entry point (dist/spawner.mjs), the process that starts stage processes */
  readonly spawner: string
}

/** One option of a command. */
export interface OptionSpec {
  readonly type: "string" | "boolean"
  readonly multiple?: boolean
  readonly placeholder?: string
  readonly help: string
}

/** Parsed option values. */
export type Values = Readonly<Record<string, string | boolean | ReadonlyArray<string | boolean> | undefined>>

/** A command: its help and what it does. It resolves to the process exit code. */
export interface CommandSpec {
  readonly summary: string
  readonly usage: string
  readonly options: Readonly<Record<string, OptionSpec>>
  readonly run: (
    values: Values,
    positionals: ReadonlyArray<string>,
    ctx: CliContext,
  ) => Effect.Effect<number, UsageError>
}
