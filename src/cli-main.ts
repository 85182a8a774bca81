/**
 * The composition root: parse the command line, run the command, map the outcome to an exit code. With
 * `cli.ts`, the only module that touches `process` (argv, signals, exit); commands live in `src/commands/`,
 * one file each, and provide their live layers.
 */
import { parseArgs } from "node:util"
import { Cause, Effect, Exit, Fiber } from "effect"
import pkg from "../package.json" with { type: "json" }
import { type CliContext, type CommandSpec, commands } from "./commands/index.js"
import { renderInvalid } from "./diagnostic.js"
import { UsageError } from "./errors.js"
import { closest } from "./suggest.js"

const help = (
  commands: Readonly<Record<string, CommandSpec>>,
) => `pipeline ${pkg.version}: declarative, content-addressed pipelines for fine-tuning text models

Usage: pipeline <command> [options]

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`)
  .join("\n")}

Run \`pipeline <command> --help\` for a command's options. Exit codes: 0 success, 1 a stage failed (or
verify found corruption), 2 invalid pipeline or usage, 130/143 interrupted.`

const commandHelp = (name: string, c: CommandSpec): string =>
  `Usage: pipeline ${name} ${c.usage}\n\n${c.summary}\n\nOptions:\n${Object.entries(c.options)
    .map(
      ([flag, o]) =>
        `  --${flag}${o.type === "string" ? ` ${o.placeholder ?? "VALUE"}` : ""}`.padEnd(28) + o.help,
    )
    .join("\n")}\n  --help                    show this help`

const usageExit = (ctx: CliContext, e: UsageError, json: boolean): number => {
  if (json)
    ctx.stdout.write(
      `${JSON.stringify({ status: "invalid", errors: [{ file: "<command line>", line: 0, column: 0, message: e.message, hint: e.hint }] })}\n`,
    )
  ctx.stderr.write(`${renderInvalid(e)}\n`)
  return 2
}

/** What `parseArgs` refused, in our words: an unknown option gets the closest known one. */
const badOptions = (name: string, command: CommandSpec, e: unknown): UsageError => {
  const help = `Run \`pipeline ${name} --help\` for its options.`
  const message = e instanceof Error ? (e.message.split("\n")[0] ?? "") : String(e)
  const unknown = /^Unknown option '(-{1,2}[^']*)'/.exec(message)?.[1]
  if (unknown === undefined) return new UsageError({ message, hint: help })
  const near = closest(unknown.replace(/^-+/, ""), [...Object.keys(command.options), "help"])
  return new UsageError({
    message: `unknown option "${unknown}" for \`pipeline ${name}\``,
    hint: near === undefined ? help : `Did you mean "--${near}"?`,
  })
}

/** Exit now with `code` (typed as returning nothing, so `return exit(2)` reads as the end of a path). */
const exit = (code: number): undefined => {
  process.exit(code)
}

/** Run a command (`argv` without node and the script) and exit with its code. */
export const runCli = (
  argv: ReadonlyArray<string>,
  entries: { readonly stageRunner: string; readonly spawner: string },
): undefined => {
  const ctx: CliContext = {
    argv,
    cwd: process.cwd(),
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
    tty: Boolean(process.stderr.isTTY) && process.env.NO_COLOR === undefined && process.env.TERM !== "dumb",
    ...entries,
  }
  const [name, ...rest] = argv
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${help(commands)}\n`)
    return exit(name === undefined ? 2 : 0)
  }
  const command = commands[name]
  if (!command) {
    const near = closest(name, Object.keys(commands))
    return exit(
      usageExit(
        ctx,
        new UsageError({
          message: `unknown command "${name}"`,
          hint: near ? `Did you mean "${near}"?` : `Run \`pipeline --help\` for the list of commands.`,
        }),
        false,
      ),
    )
  }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args: [...rest],
      options: {
        help: { type: "boolean" },
        ...Object.fromEntries(
          Object.entries(command.options).map(([k, o]) => [
            k,
            { type: o.type, multiple: o.multiple ?? false },
          ]),
        ),
      },
      allowPositionals: true,
      strict: true,
    })
  } catch (e) {
    return exit(usageExit(ctx, badOptions(name, command, e), rest.includes("--json")))
  }
  if (parsed.values.help) {
    process.stdout.write(`${commandHelp(name, command)}\n`)
    return exit(0)
  }
  const json = parsed.values.json === true
  const fiber = Effect.runFork(command.run(parsed.values, parsed.positionals, ctx))
  let signal: NodeJS.Signals | undefined
  const onSignal = (s: NodeJS.Signals) => {
    if (signal) return // a second Ctrl-C while we clean up changes nothing: the cleanup is already running
    signal = s
    ctx.stderr.write(`\n${s === "SIGINT" ? "Interrupted" : "Terminated"}: stopping running stages...\n`)
    Effect.runFork(Fiber.interrupt(fiber))
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  fiber.addObserver((exit) => {
    let code: number
    if (Exit.isSuccess(exit)) code = signal ? (signal === "SIGINT" ? 130 : 143) : exit.value
    else if (Exit.isInterrupted(exit)) code = signal === "SIGTERM" ? 143 : 130
    else {
      const failure = Cause.failureOption(exit.cause)
      if (failure._tag === "Some" && failure.value instanceof UsageError)
        code = usageExit(ctx, failure.value, json)
      else {
        ctx.stderr.write(`pipeline: internal error: ${Cause.pretty(exit.cause)}\n`)
        code = 70
      }
    }
    // Let stdout drain before exiting (a JSON summary piped to another program must arrive whole).
    process.stdout.write("", () => process.exit(code))
  })
  return undefined
}
