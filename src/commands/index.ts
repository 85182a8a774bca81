/**
 * Every command of the `pipeline` CLI, by name, in the order `--help` lists them.
 */
import type { CommandSpec } from "./context.js"
import { dag } from "./dag.js"
import { doctor } from "./doctor.js"
import { gc } from "./gc.js"
import { recover } from "./recover.js"
import { run } from "./run.js"
import { runs, show } from "./runs.js"
import { status } from "./status.js"
import { verify } from "./verify.js"

export type { CliContext, CommandSpec } from "./context.js"

export const commands: Readonly<Record<string, CommandSpec>> = {
  run,
  status,
  dag,
  runs,
  show,
  gc,
  verify,
  recover,
  doctor,
}
